package node

import (
	"errors"
	"fmt"
	"time"
)

// State is a node's protocol state.
type State string

const (
	StateReady     State = "ready"
	StatePreparing State = "preparing"
	StatePrepared  State = "prepared"
	StateDetaching State = "detaching"
	StateDetached  State = "detached"
	StateCloned    State = "cloned"
)

// PrepareMode says what a template does with its pending sessions.
type PrepareMode string

const (
	PrepareSuspend PrepareMode = "suspend"
	PrepareEnd     PrepareMode = "end"
)

// Status is what a node reports about itself (GET /v1/status).
type Status struct {
	ID         string `json:"id"`
	State      State  `json:"state"`
	Sessions   int    `json:"sessions"`
	Ready      bool   `json:"ready"`
	Generation int    `json:"generation"`
	// Operation is the operation the node is in, if any.
	Operation string `json:"operation,omitempty"`
	// Warmth figures, for template selection.
	CacheHitRatio float64 `json:"cache_hit_ratio"`
	UptimeSeconds float64 `json:"uptime_seconds"`
}

// PrepareRequest asks a template to get ready to be cloned.
type PrepareRequest struct {
	Operation string      `json:"operation"`
	Deadline  time.Time   `json:"deadline"`
	Mode      PrepareMode `json:"mode"`
}

// PrepareReply says whether the node accepted; a refusal carries a reason.
type PrepareReply struct {
	Accepted bool   `json:"accepted"`
	Reason   string `json:"reason,omitempty"`
}

// OperationRequest is the body of resume and detach: the operation asking.
type OperationRequest struct {
	Operation string `json:"operation"`
}

// FinalizeRequest gives a clone its own identity.
type FinalizeRequest struct {
	Operation string `json:"operation"`
	ID        string `json:"id"`
	Address   string `json:"address"`
}

// Problem is the body of every error answer.
type Problem struct {
	Error string `json:"error"`
	// State is the node's state, on a 409.
	State State `json:"state,omitempty"`
	// Operation is the operation the node is in, on a 409 (if any).
	Operation string `json:"operation,omitempty"`
}

// StateError is a call that does not fit the node's state (HTTP 409).
type StateError struct {
	Call  string
	State State
	// Operation is the operation the node is in, if any: a node held by
	// another operation says which.
	Operation string
	Message   string
}

func (e *StateError) Error() string {
	if e.Operation != "" {
		return fmt.Sprintf("node: %s refused in state %s (operation %s): %s", e.Call, e.State, e.Operation, e.Message)
	}
	return fmt.Sprintf("node: %s refused in state %s: %s", e.Call, e.State, e.Message)
}

// ErrUnauthorized is a call the node refused for its credentials (401).
var ErrUnauthorized = errors.New("node: unauthorized (check the node API token)")
