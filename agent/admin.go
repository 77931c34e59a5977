package agent

import "net/http"

// adminRoutes are the endpoints that change what the agent does: a
// cluster's switches, the policy, and the audit trail of those writes.
func (a *Agent) adminRoutes() []route {
	return []route{}
}

var _ = http.MethodGet
