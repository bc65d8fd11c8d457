package tasks

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cloudrift/cloudrift/plugins"
)

// GuardPlugin is the name the guard is registered under.
const GuardPlugin = "tasks-guard"

func init() {
	plugins.Register(plugins.Info{Name: GuardPlugin, New: func() plugins.Plugin { return new(Guard) }})
}

// ErrForbidden: a game client touched a key of the job that is not its
// own.
var ErrForbidden = errors.New("tasks: not a worker's key")

// Guard is the "tasks-guard" plugin, run by the client servers. Under the
// job's keys, it lets game clients Post and Release only ready and result
// rows (tasks and progress are the coordinator's), and read (Get,
// subscribe) only their own task key, the progress and the ready and
// result keys. Keys outside the job are not its business. Operations of
// servers are not checked.
type Guard struct {
	// Job is the job's name, as the coordinator's. Required.
	Job string `yaml:"job"`
}

var (
	_ plugins.Validator   = (*Guard)(nil)
	_ plugins.CloudFilter = (*Guard)(nil)
)

// Validate implements plugins.Validator.
func (g *Guard) Validate() error {
	if g.Job == "" || len(g.Job) > MaxJobBytes {
		return fmt.Errorf("job: a name of 1 to %d bytes is required", MaxJobBytes)
	}
	return nil
}

// FilterCloud implements plugins.CloudFilter.
func (g *Guard) FilterCloud(op *plugins.CloudOp) error {
	if op.Uploader.ID == 0 {
		return nil
	}
	ready, res, progress, own := ReadyKey(g.Job), ResultKey(g.Job), ProgressKey(g.Job), TaskKey(g.Job, op.Uploader)
	for _, k := range op.Keys {
		if !strings.HasPrefix(k.Primary, g.Job+"/") {
			continue
		}
		switch op.Kind {
		case plugins.CloudOpPost, plugins.CloudOpRelease:
			if k != ready && k != res {
				return fmt.Errorf("%w: %s", ErrForbidden, k)
			}
			if op.Kind == plugins.CloudOpPost && k == res {
				if _, err := decodeResult(op.Data); err != nil {
					return err
				}
			}
		default:
			if k != ready && k != res && k != progress && k != own {
				return fmt.Errorf("%w: %s", ErrForbidden, k)
			}
		}
	}
	return nil
}
