// Package deploytest holds process-level integration tests of a real
// deployment: cloudrift servers run as separate processes ("cloudrift run"),
// discover each other through a real Consul agent (internal/consultest), and
// are observed through their JSON logs and through Consul.
//
// The tests build the cmd/cloudrift binary once (with -race when the tests
// run with -race), launch replicas on free loopback ports, kill them with
// SIGKILL, and stop, restart or lock down (ACLs) the agent. They measure
// and log the discovery times (a replica's start until every peer has
// linked to it, a kill until every peer has dropped it and until Consul
// reports it critical) and assert only functional bounds; the timing
// targets are checked by bench/discovery, not by tests.
//
// The tests run one after the other, not in parallel: two of them stop an
// agent and start it again on the same ports, which an agent starting
// meanwhile for another test could take (consultest picks free ports from
// the kernel's ephemeral range), and a two-core machine running a dozen
// race-instrumented servers at once would blur the measurements.
//
// Its non-test code (Build, the topology in Groups and Peers, CleanEnv) is
// shared with bench/discovery, and its process runner (StartRun, Proc)
// with the churn suite (internal/churntest).
package deploytest
