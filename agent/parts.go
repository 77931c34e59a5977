package agent

import (
	"net/http"

	"github.com/mitosis-autoscaler/mitosis/agent/dashboard"
	"github.com/mitosis-autoscaler/mitosis/agent/telemetry"
)

// The agent's telemetry and dashboard are packages of their own
// (agent/telemetry, agent/dashboard); these are the names the agent's API
// code reaches them by.

// agentTelemetry is the agent's telemetry, with the one call the policy
// push makes under its own name.
type agentTelemetry struct{ *telemetry.Telemetry }

// policyVersion is telemetry.PolicyVersion: the policy decided with now.
func (t agentTelemetry) policyVersion(v string) { t.PolicyVersion(v) }

// mountWeb serves the dashboard on the API's mux, without a token: its
// files hold no data (docs/dashboard.md).
func (a *Agent) mountWeb(mux *http.ServeMux) { dashboard.Mount(mux) }
