// Package churntest is the churn suite: the cloud memory and the links
// under membership events (a cloud replica joins, leaves gracefully, is
// killed or stopped and continued; an external server is killed and
// restarted; the registry flaps to empty; the Consul agent restarts; one
// Consul server of three is lost), each while game clients load the
// system, with an invariant checker watching every answer.
//
// The load (Load) runs uploaders posting rows, subscribers holding live
// Views and readers doing Gets in a loop, all through the Go SDK over real
// WebSockets. The checker (Checker) knows which rows exist (the
// confirmed rows of connected uploaders) and checks, while the event
// runs:
//
//   - no Get is short without saying Partial;
//   - a Partial Get misses only keys whose owner was not reachable the
//     whole time (the replica the event concerns, before or after it);
//   - no Deleted notification for a row of a connected uploader;
//   - no client of a surviving server is disconnected;
//
// and once the load stops posting: every row of a connected uploader is
// present exactly once with its latest value and no other row is, and
// every View equals a fresh Get. The tests also read the servers' logs for
// links closed because the registry stopped listing a live peer.
//
// Events that need real processes (signals, Consul) run `cloudrift run`
// processes against internal/consultest; the others run in this process
// on package clustertest. Each test is independent and bounded in time.
//
// The figures (per event: how long until every Get is consistent again,
// and the share of Gets answered Partial or failed, beside a run with no
// event) are written as a Markdown table to the file named by
// CLOUDRIFT_CHURN_FIGURES when it is set; tests assert no timing.
package churntest
