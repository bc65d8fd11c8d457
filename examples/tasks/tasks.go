// Package tasks is the distributed-tasks example of RakNet's cloud
// computing documentation (CloudServer and CloudClient): the cloud memory
// as a distributed event coordinator that splits a problem across many
// clients.
//
// Workers are game clients. Each subscribes to its own task key, then posts
// a "ready" row (RakNet's ID_SIGNAL_READY). A coordinator, the
// "tasks-coordinator" plugin on a server of an internal group that connects
// to the cloud group, subscribes to the ready and result keys. When a worker
// is ready and a task is waiting, it posts the task to that worker's task
// key (RakNet's ID_TASK_SUBSCRIPTION, with the worker named by the key
// rather than in the data). The worker computes and posts its result
// (ID_TASK_COMPLETION); the coordinator records it and posts the worker its
// next task. A worker that disconnects or crashes mid-task takes its rows
// with it: the coordinator gets Deleted for its ready row (RakNet's
// OnDeletion) and hands the task to another worker.
//
// The problem here is counting the primes in a range, split into chunks: a
// result that is easy to check. The coordinator posts its progress under
// ProgressKey for anyone to watch.
//
// The "tasks-guard" plugin, on the client servers, keeps workers to their
// own keys: they may post only ready and result rows, and read only their
// own task key.
package tasks

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/protocol"
)

// ClientRef is the system-wide address of a game client (a worker).
type ClientRef = protocol.ClientRef

// Key is a cloud-memory key.
type Key = cloud.Key

// MaxJobBytes bounds a job name, the prefix of its keys.
const MaxJobBytes = 64

// ErrBadRow: a task, result or progress row that does not decode.
var ErrBadRow = errors.New("tasks: bad row")

// ReadyKey is where a job's workers post that they are ready (the data is
// the worker's name).
func ReadyKey(job string) Key { return Key{Primary: job + "/ready"} }

// ResultKey is where a job's workers post the result of their last task.
func ResultKey(job string) Key { return Key{Primary: job + "/result"} }

// ProgressKey is where the coordinator posts a job's progress.
func ProgressKey(job string) Key { return Key{Primary: job + "/progress"} }

// TaskKey is where the coordinator posts the task of one worker: a key of
// its own, so that a worker reads only its task and a resync never mixes
// two workers' tasks.
func TaskKey(job string, worker ClientRef) Key {
	return Key{Primary: job + "/task/" + worker.String()}
}

// Task is a piece of the problem: count the primes in [Lo, Hi).
type Task struct {
	Round uint32 // the job's round: tasks of a new round are new work
	ID    uint32 // the task's index in its round
	Lo    uint64
	Hi    uint64
}

// String formats the task.
func (t Task) String() string { return fmt.Sprintf("task %d.%d [%d, %d)", t.Round, t.ID, t.Lo, t.Hi) }

func (t Task) encode() []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 24), t.Round)
	b = binary.BigEndian.AppendUint32(b, t.ID)
	b = binary.BigEndian.AppendUint64(b, t.Lo)
	return binary.BigEndian.AppendUint64(b, t.Hi)
}

func decodeTask(b []byte) (Task, error) {
	if len(b) != 24 {
		return Task{}, fmt.Errorf("%w: task of %d bytes", ErrBadRow, len(b))
	}
	t := Task{Round: binary.BigEndian.Uint32(b), ID: binary.BigEndian.Uint32(b[4:]),
		Lo: binary.BigEndian.Uint64(b[8:]), Hi: binary.BigEndian.Uint64(b[16:])}
	if t.Hi < t.Lo {
		return Task{}, fmt.Errorf("%w: %s", ErrBadRow, t)
	}
	return t, nil
}

// result is a worker's answer to a task.
type result struct {
	Round, ID uint32
	Count     uint64
}

func (r result) encode() []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 16), r.Round)
	b = binary.BigEndian.AppendUint32(b, r.ID)
	return binary.BigEndian.AppendUint64(b, r.Count)
}

func decodeResult(b []byte) (result, error) {
	if len(b) != 16 {
		return result{}, fmt.Errorf("%w: result of %d bytes", ErrBadRow, len(b))
	}
	return result{Round: binary.BigEndian.Uint32(b), ID: binary.BigEndian.Uint32(b[4:]), Count: binary.BigEndian.Uint64(b[8:])}, nil
}

// Progress is a job's state, as the coordinator posts it.
type Progress struct {
	Round      uint32
	Tasks      uint32 // tasks of the round
	Done       uint32 // tasks with a result
	Reassigned uint32 // tasks handed to another worker after theirs left
	Workers    uint32 // workers ready now
	Result     uint64 // primes counted so far
	Finished   bool   // every task of the round has a result
}

// String formats the progress in one line.
func (p Progress) String() string {
	s := fmt.Sprintf("round %d: %d/%d tasks done, %d reassigned, %d workers, %d primes", p.Round, p.Done, p.Tasks, p.Reassigned, p.Workers, p.Result)
	if p.Finished {
		s += " (finished)"
	}
	return s
}

func (p Progress) encode() []byte {
	b := make([]byte, 0, 29)
	for _, v := range []uint32{p.Round, p.Tasks, p.Done, p.Reassigned, p.Workers} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	b = binary.BigEndian.AppendUint64(b, p.Result)
	if p.Finished {
		return append(b, 1)
	}
	return append(b, 0)
}

func decodeProgress(b []byte) (Progress, error) {
	if len(b) != 29 {
		return Progress{}, fmt.Errorf("%w: progress of %d bytes", ErrBadRow, len(b))
	}
	u := func(i int) uint32 { return binary.BigEndian.Uint32(b[4*i:]) }
	return Progress{Round: u(0), Tasks: u(1), Done: u(2), Reassigned: u(3), Workers: u(4),
		Result: binary.BigEndian.Uint64(b[20:]), Finished: b[28] == 1}, nil
}

// CountPrimes counts the primes in [lo, hi) with a segmented sieve; it
// checks ctx between segments.
func CountPrimes(ctx interface{ Err() error }, lo, hi uint64) (uint64, error) {
	if hi <= 2 || hi <= lo {
		return 0, nil
	}
	lo = max(lo, 2)
	// Base primes up to sqrt(hi).
	root := uint64(1)
	for root*root < hi {
		root++
	}
	small := make([]bool, root+1)
	var base []uint64
	for i := uint64(2); i <= root; i++ {
		if !small[i] {
			base = append(base, i)
			for j := i * i; j <= root; j += i {
				small[j] = true
			}
		}
	}
	const seg = 1 << 16
	composite := make([]bool, seg)
	var n uint64
	for start := lo; start < hi; start += seg {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		end := min(start+seg, hi)
		clear(composite)
		for _, p := range base {
			if p*p >= end {
				break
			}
			first := max(p*p, (start+p-1)/p*p)
			for j := first; j < end; j += p {
				composite[j-start] = true
			}
		}
		for i := start; i < end; i++ {
			if !composite[i-start] {
				n++
			}
		}
	}
	return n, nil
}
