package cluster

import (
	"errors"
	"fmt"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/plugins"
)

// The cloud-memory wiring: each plugin's session of the server's
// CloudMemoryProvider (the cloud memory's caller side, attached to servers
// whose group connects to a cloud-memory group), and the filters that may
// refuse an operation.

// filterCloud runs every CloudFilter; the first rejection wins and a
// panic rejects.
func (hs *hookSet) filterCloud(op *plugins.CloudOp) error {
	for _, h := range hs.filters {
		var refusal error
		err := hs.call(h.slot, "FilterCloud", func() error {
			refusal = h.h.FilterCloud(op)
			return nil
		})
		if err != nil {
			return errors.New("query filter failed")
		}
		if refusal != nil {
			return refusal
		}
	}
	return nil
}

// metered wraps a cloud-memory session so its operations are counted.
func (hs *hookSet) metered(c plugins.CloudMemory) plugins.CloudMemory {
	if c == nil {
		return nil
	}
	return meteredCloud{CloudMemory: c, m: &hs.s.cloudMeter}
}

// cloudSession returns slot's cloud-memory session, making it on first
// use. slot is nil for the embedder's Host.
func (hs *hookSet) cloudSession(slot *pluginSlot) (plugins.CloudMemory, error) {
	if hs.cloud == nil {
		return nil, fmt.Errorf("%w: group %q connects to no cloud-memory group", plugins.ErrNoCloudMemory, hs.s.group.Name)
	}
	if slot == nil {
		hs.embedOnce.Do(func() { hs.embedCloud = hs.metered(hs.cloud.CloudSession("embedder", nil)) })
		return hs.embedCloud, nil
	}
	slot.cloudOnce.Do(func() {
		var notify func(cloud.Notification)
		if h, ok := slot.p.(plugins.CloudNotificationHandler); ok {
			notify = func(n cloud.Notification) {
				_ = hs.call(slot, "CloudNotification", func() error { return h.CloudNotification(n) })
			}
		}
		slot.cloud = hs.metered(hs.cloud.CloudSession(slot.name, notify))
	})
	return slot.cloud, nil
}
