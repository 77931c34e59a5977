// Package node is the node API: what the controller and an application
// server say to each other when a node is prepared, cloned, resumed,
// finalized or detached. It holds the wire types, the Client the
// controller uses, and Server, the library an application embeds by
// implementing App; node/nodetest is the conformance suite any
// implementation runs. docs/node-api.md documents the HTTP API and
// docs/node-api.openapi.yaml describes it.
//
// A node moves through these states:
//
//	                     prepare (accepted)           settled
//	             ┌───► ready ──────────────► preparing ───────► prepared
//	             │     │ ▲ ▲                     │                 │
//	             │     │ │ └───── resume ────────┼─────────────────┤  the template
//	             │     │ └─────── finalize ──────┴─────────────────┘  its live clone
//	   cloned ───┘     │ detach
//	        finalize   ▼
//	               detaching ───────────► detached
//	                       no session left
//
//	from       call      to         when
//	ready      prepare   preparing  the app accepts (a refusal leaves it ready)
//	preparing  -         prepared   the app has settled: nothing in flight
//	preparing, resume    ready      by the operation that prepared it
//	prepared
//	preparing, finalize  ready      by the operation that prepared it: the node
//	prepared                        is a live clone of that template
//	cloned     finalize  ready      by any operation
//	ready      detach    detaching
//	detaching  -         detached   no session left
//
// A live clone continues its template's exact memory, so its node
// starts in the template's state (prepared, or preparing if the clone
// was forced), with the template's identity and operation; finalize
// purges the sessions it inherited, gives it its own id and address,
// and bumps its generation. The saga resumes the template (back to
// ready) before it finalizes the clone, at the clone's address, so the
// template never takes its clone's identity. State cloned is for an app
// that knows it is a clone but not which operation made it
// (ServerOptions.Cloned, Server.MarkCloned).
//
// Every write carries an operation id and is idempotent per operation:
// the same call again answers what it answered first and does nothing
// more (a finalize of the same operation with another id or address is
// not the same call: 409). A call that does not fit the state is refused with 409 and the
// state (and the operation holding the node, if any).
package node
