package consul

import (
	"fmt"
	"time"

	"github.com/cloudrift/cloudrift/registry"
)

// Type is the Consul connector's name in the system file's registry block.
const Type = "consul"

// Settings is the registry block's `settings:` for the Consul connector:
//
//	registry:
//	  type: consul
//	  settings:
//	    address: 127.0.0.1:8500
//	    ttl: 5s
//
// Every zero value means what the same Config field's zero value means:
// empty strings fall back to the standard Consul environment.
type Settings struct {
	Address         string        `yaml:"address"`
	Token           string        `yaml:"token"`
	Scheme          string        `yaml:"scheme"` // "http", "https" or ""
	Datacenter      string        `yaml:"datacenter"`
	TTL             time.Duration `yaml:"ttl"`             // zero: DefaultTTL; at least MinTTL
	DeregisterAfter time.Duration `yaml:"deregisterAfter"` // zero: DefaultDeregisterAfter; at least MinDeregisterAfter
	TLS             SettingsTLS   `yaml:"tls"`
}

// SettingsTLS is the `tls:` part of Settings; see TLSConfig.
type SettingsTLS struct {
	CAFile             string `yaml:"caFile"`
	CAPath             string `yaml:"caPath"`
	CertFile           string `yaml:"certFile"`
	KeyFile            string `yaml:"keyFile"`
	ServerName         string `yaml:"serverName"`
	InsecureSkipVerify bool   `yaml:"insecureSkipVerify"`
}

// Validate reports settings New would refuse, so "cloudrift validate"
// finds them without contacting Consul.
func (s *Settings) Validate() error {
	switch {
	case s.Scheme != "" && s.Scheme != "http" && s.Scheme != "https":
		return fmt.Errorf("%w: scheme %q is not \"http\" or \"https\"", ErrInvalidConfig, s.Scheme)
	case s.TTL != 0 && s.TTL < MinTTL:
		return fmt.Errorf("%w: ttl %v is below the minimum of %v", ErrInvalidConfig, s.TTL, MinTTL)
	case s.DeregisterAfter != 0 && s.DeregisterAfter < MinDeregisterAfter:
		return fmt.Errorf("%w: deregisterAfter %v is below Consul's minimum of %v", ErrInvalidConfig, s.DeregisterAfter, MinDeregisterAfter)
	case (s.TLS.CertFile == "") != (s.TLS.KeyFile == ""):
		return fmt.Errorf("%w: tls: certFile %q and keyFile %q: give both or neither", ErrInvalidConfig, s.TLS.CertFile, s.TLS.KeyFile)
	}
	return nil
}

// Config is the Config of these settings for the system and logger of opts.
func (s *Settings) Config(opts registry.Options) Config {
	return Config{
		System:     opts.System,
		Address:    s.Address,
		Scheme:     s.Scheme,
		Datacenter: s.Datacenter,
		Token:      s.Token,
		TLS: TLSConfig{
			CAFile:             s.TLS.CAFile,
			CAPath:             s.TLS.CAPath,
			CertFile:           s.TLS.CertFile,
			KeyFile:            s.TLS.KeyFile,
			ServerName:         s.TLS.ServerName,
			InsecureSkipVerify: s.TLS.InsecureSkipVerify,
		},
		TTL:             s.TTL,
		DeregisterAfter: s.DeregisterAfter,
		Logger:          opts.Logger,
	}
}

func init() {
	registry.Register(Type, func(s *Settings, opts registry.Options) (registry.Connector, error) {
		c, err := New(s.Config(opts))
		if err != nil {
			return nil, err // not a nil *Connector in a non-nil interface
		}
		return c, nil
	})
}
