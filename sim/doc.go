// Package sim is the simulator: it runs the same controller as the agent
// (policy → plan → sagas, every guardrail included) against a simulated
// cluster and a virtual clock, and reports what happened.
//
//	workload ──► World ◄──── autoscaler.Controller ────► in-memory registry
//	(trace or    clock, hypervisor,     Tick: metrics → policy → plan
//	 synthetic)  dispatcher, node API,  Actuate: saga steps
//	             metrics
//
// The pieces:
//
//   - ReadTrace and Synthetic make a Workload: requests per interval.
//   - World implements the controller's ports but the registry and the
//     policy (autoscaler.Clock, Hypervisor, Dispatcher, NodeAPI,
//     MetricsSource) with a fluid model of the cluster: demand, one
//     queue, least-connections balancing, nodes whose capacity grows with
//     their warmth, live clones that inherit it and cold boots that do
//     not (see World and docs/simulation.md).
//   - Run wires a World, an autoscaler.MemRegistry and the controller,
//     and steps them to the end of the workload, recording a Row per
//     simulated minute and every operation.
//   - Summarize turns a timeline into a Summary; WriteSummaryTable,
//     WriteTimelineCSV and WriteHTML report one run or several side by
//     side.
//
// Configuration comes as a FileConfig: the agent's configuration with a
// `simulation:` section of Params, decoded strictly by ParseConfig.
package sim
