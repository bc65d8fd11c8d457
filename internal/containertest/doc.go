// Package containertest checks the deployment files under deploy/: the
// Kubernetes manifests and the compose file are parsed and held to the
// system file they deploy, and the compose file is brought up on the local
// Docker engine, images and all, and scaled while it runs.
//
// The Docker test needs docker and docker-compose on PATH and a Consul
// binary (CLOUDRIFT_CONSUL, <repo>/.bin/consul or PATH); without them it
// skips, unless CI=true, when it fails. It builds its own images under a
// unique tag, runs the system as a compose project of a unique name on a
// network of its own, and removes containers, networks, volumes and images
// when it ends, passed or failed.
//
// Project (project.go) drives one compose project from Go: docker and
// docker-compose commands, the Consul registrations and upstream links of
// its servers, teardown. The Docker test and the chaos suite
// (tools/chaos) share it.
package containertest
