// Package node is the node API: what the controller and an application
// server say to each other when a node is prepared, cloned, resumed,
// finalized or detached. It holds the wire types, the Client the
// controller uses, and Server, the library an application embeds by
// implementing App. docs/node-api.md documents the HTTP API and
// docs/node-api.openapi.yaml describes it.
//
// A node moves through these states. Every call carries an operation id
// and is idempotent per operation: the same call again answers what it
// answered first and does nothing more. A call that does not fit the
// state is refused with 409 and the state.
//
//	                 prepare (accepted)            settled
//	  ┌──────► ready ─────────────────► preparing ─────────► prepared
//	  │          │  ▲  prepare refused: stays ready            │   │
//	  │          │  └──────────── resume ──────────────────────┘   │
//	  │          │                                                 │ the VM is
//	  │          │ detach                                          │ live-cloned:
//	  │          ▼                                                 ▼ the clone starts here,
//	  │      detaching ──► detached (no sessions left)          cloned   with the template's
//	  │                                                            │     memory and identity
//	  └──────────────────────── finalize ──────────────────────────┘
//	        (purge inherited sessions, take the new id and address, generation+1)
//
// A template is prepared, cloned, then resumed; its clone is finalized.
// Finalize is accepted only from cloned: the template, which is prepared
// (or ready again) but not cloned, can never take its clone's identity.
// How a clone knows it is one is the application's affair: the reference
// node (cmd/demo-node) starts from a saved state as cloned; a guest agent
// in a VM would read the identity the hypervisor hands it.
package node
