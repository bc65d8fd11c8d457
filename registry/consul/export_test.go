package consul

// crash simulates the death of the process that owns c: the heartbeat
// stops and the registration is forgotten without deregistering, so the
// service stays in Consul until its TTL check turns critical. Watches keep
// running; a later Close does not deregister.
func (c *Connector) crash() {
	c.regMu.Lock()
	defer c.regMu.Unlock()
	if c.reg == nil {
		return
	}
	c.reg.cancel()
	<-c.reg.done
	c.reg = nil
}
