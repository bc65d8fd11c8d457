package ops

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudrift/cloudrift/cluster"
	"github.com/cloudrift/cloudrift/plugins"
)

// CloudStore is implemented by a plugin that holds cloud-memory rows (a
// cloud-memory replica). It is read at every scrape, so it must be cheap
// and safe for concurrent use.
type CloudStore interface {
	CloudStoreStats() (rows, keys, subscriptions int)
}

// collector reads the servers' counters at scrape time. Servers of one
// group in one process (dev mode) are summed: no label names a server.
type collector struct {
	servers []*cluster.Server
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("cloudrift_"+name, help, labels, nil)
}

var (
	dLinksUp      = desc("links_up", "Links past the handshake, per related group.", "group", "peer_group")
	dMembers      = desc("registry_members", "Servers of a related group the registry lists (or still linked).", "group", "peer_group")
	dLinkMsgIn    = desc("link_messages_received_total", "Messages received over links (plugin, client routing and extension frames).", "group", "peer_group")
	dLinkMsgOut   = desc("link_messages_sent_total", "Messages queued to links (plugin, client routing and extension frames).", "group", "peer_group")
	dLinkBytesIn  = desc("link_received_bytes_total", "Frame bytes received over links after the handshake.", "group", "peer_group")
	dLinkBytesOut = desc("link_sent_bytes_total", "Frame bytes queued to links after the handshake.", "group", "peer_group")
	dLinkQueue    = desc("link_send_queue_bytes", "Bytes waiting in the send queues of links.", "group", "peer_group")
	dLinkCloses   = desc("link_closes_total", "Links that went down, by reason.", "group", "reason")
	dRefused      = desc("handshakes_refused_total", "Connections refused before a link or client session began, by reason.", "group", "reason")
	dClients      = desc("clients_connected", "Game clients connected.", "group")
	dClientIn     = desc("client_messages_received_total", "Messages received from game clients.", "group")
	dClientOut    = desc("client_messages_sent_total", "Messages queued to game clients.", "group")
	dClientCloses = desc("client_closes_total", "Game-client sessions that ended, by reason.", "group", "reason")
	dHookErrors   = desc("hook_errors_total", "Plugin hooks that returned an error.", "group", "plugin", "hook")
	dHookPanics   = desc("hook_panics_total", "Plugin hooks that panicked.", "group", "plugin", "hook")
	dRegErrors    = desc("registry_errors_total", "Registry calls (register, watch, deregister) that failed.", "group")
	dBusySends    = desc("link_busy_sends_total", "Sends that left a link's queue over half of links.queueBytes (the link is busy).", "group")
	dBusyRefused  = desc("link_sends_refused_total", "Sends refused with ErrBusy: the link's queue was full.", "group")
	dReadPauses   = desc("read_pauses_total", "Read loops paused until a busy link drained, by loop (client or link).", "group", "loop")
	dCloudOps     = desc("cloud_operations_total", "Cloud-memory operations made by plugins or game clients, by source, kind and result code.", "group", "source", "op", "result")
	dCloudLatency = desc("cloud_operation_duration_seconds", "Latency of cloud-memory operations made by plugins or game clients, by source and kind.", "group", "source", "op")
	dCloudRows    = desc("cloud_rows", "Rows a cloud-memory replica holds.", "group")
	dCloudKeys    = desc("cloud_keys", "Keys a cloud-memory replica holds rows or subscriptions for.", "group")
	dCloudSubs    = desc("cloud_subscriptions", "Subscriptions a cloud-memory replica holds.", "group")
	dReady        = desc("servers_ready", "Servers that answer /readyz with 200.", "group")
	dDraining     = desc("servers_draining", "Servers draining: taking no new game clients, moving theirs elsewhere.", "group")
)

var allDescs = []*prometheus.Desc{dLinksUp, dMembers, dLinkMsgIn, dLinkMsgOut, dLinkBytesIn, dLinkBytesOut, dLinkQueue,
	dLinkCloses, dRefused, dClients, dClientIn, dClientOut, dClientCloses, dHookErrors, dHookPanics, dRegErrors,
	dBusySends, dBusyRefused, dReadPauses, dCloudOps, dCloudLatency, dCloudRows, dCloudKeys, dCloudSubs, dReady, dDraining}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// series sums values by descriptor and label values.
type series struct {
	order []seriesKey
	vals  map[seriesKey]float64
	kind  map[*prometheus.Desc]prometheus.ValueType
}

type seriesKey struct {
	d      *prometheus.Desc
	labels [4]string // the most any series has
}

func (s *series) add(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	k := seriesKey{d: d}
	copy(k.labels[:], labels)
	if _, ok := s.vals[k]; !ok {
		s.order = append(s.order, k)
	}
	s.vals[k] += v
	s.kind[d] = t
}

func (s *series) emit(ch chan<- prometheus.Metric, arity map[*prometheus.Desc]int) {
	for _, k := range s.order {
		ch <- prometheus.MustNewConstMetric(k.d, s.kind[k.d], s.vals[k], k.labels[:arity[k.d]]...)
	}
}

type histo struct {
	buckets map[float64]uint64
	count   uint64
	sum     float64
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := &series{vals: map[seriesKey]float64{}, kind: map[*prometheus.Desc]prometheus.ValueType{}}
	arity := map[*prometheus.Desc]int{}
	add := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		arity[d] = len(labels)
		s.add(d, t, v, labels...)
	}
	const counter, gauge = prometheus.CounterValue, prometheus.GaugeValue
	type hkey struct{ group, source, op string }
	histos := map[hkey]*histo{}
	var horder []hkey
	for _, srv := range c.servers {
		g := srv.GroupName()
		for _, rg := range srv.Groups() {
			add(dMembers, gauge, float64(rg.Members), g, rg.Group)
			add(dLinksUp, gauge, float64(rg.LinksUp), g, rg.Group)
			add(dLinkQueue, gauge, float64(rg.QueueBytes), g, rg.Group)
			add(dLinkMsgIn, counter, float64(rg.MessagesIn), g, rg.Group)
			add(dLinkMsgOut, counter, float64(rg.MessagesOut), g, rg.Group)
			add(dLinkBytesIn, counter, float64(rg.BytesIn), g, rg.Group)
			add(dLinkBytesOut, counter, float64(rg.BytesOut), g, rg.Group)
		}
		closes := srv.Closes()
		for r, n := range closes.Links {
			add(dLinkCloses, counter, float64(n), g, r)
		}
		for r, n := range closes.Refused {
			add(dRefused, counter, float64(n), g, r)
		}
		for r, n := range closes.Clients {
			add(dClientCloses, counter, float64(n), g, r)
		}
		if cs := srv.Clients(); cs.External {
			add(dClients, gauge, float64(cs.Connected), g)
			add(dClientIn, counter, float64(cs.MessagesIn), g)
			add(dClientOut, counter, float64(cs.MessagesOut), g)
		}
		for _, h := range srv.HookFailures() {
			add(dHookErrors, counter, float64(h.Errors), g, h.Plugin, h.Hook)
			add(dHookPanics, counter, float64(h.Panics), g, h.Plugin, h.Hook)
		}
		add(dRegErrors, counter, float64(srv.RegistryErrors()), g)
		st := srv.Stats()
		add(dBusySends, counter, float64(st.BusySends), g)
		add(dBusyRefused, counter, float64(st.SendsRefused), g)
		add(dReadPauses, counter, float64(st.ClientPauses), g, "client")
		add(dReadPauses, counter, float64(st.LinkPauses), g, "link")
		ready := 0.0
		if srv.Ready() == nil {
			ready = 1
		}
		add(dReady, gauge, ready, g)
		draining := 0.0
		if srv.Draining() {
			draining = 1
		}
		add(dDraining, gauge, draining, g)
		for _, op := range srv.CloudOps() {
			for r, n := range op.Results {
				add(dCloudOps, counter, float64(n), g, op.Source, op.Kind, r)
			}
			k := hkey{g, op.Source, op.Kind}
			h := histos[k]
			if h == nil {
				h = &histo{buckets: map[float64]uint64{}}
				histos[k] = h
				horder = append(horder, k)
			}
			for i, b := range cluster.CloudLatencyBuckets {
				h.buckets[b] += op.Buckets[i]
			}
			h.count += op.Count
			h.sum += op.Sum.Seconds()
		}
		srv.PluginsDo(func(_ string, p plugins.Plugin) {
			if cs, ok := p.(CloudStore); ok {
				rows, keys, subs := cs.CloudStoreStats()
				add(dCloudRows, gauge, float64(rows), g)
				add(dCloudKeys, gauge, float64(keys), g)
				add(dCloudSubs, gauge, float64(subs), g)
			}
		})
	}
	s.emit(ch, arity)
	for _, k := range horder {
		h := histos[k]
		ch <- prometheus.MustNewConstHistogram(dCloudLatency, h.count, h.sum, h.buckets, k.group, k.source, k.op)
	}
}
