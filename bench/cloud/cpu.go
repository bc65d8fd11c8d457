package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc/PID/stat's CPU times (USER_HZ, 100 on
// every Linux this runs on).
const clockTick = 10 * time.Millisecond

// cpuTime returns the user and system CPU time a process has used so far,
// from /proc; an error where there is no /proc (CPU figures are then left
// out). Time the kernel spends on softirqs (loopback delivery among them)
// is charged to no process, on either side.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after it do not.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// f[0] is field 3 (state): utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad CPU times", pid)
	}
	return time.Duration(ut+st) * clockTick, nil
}

// cpuMeter samples the CPU time of a set of processes.
type cpuMeter struct {
	pids []int
}

// sample returns each process's CPU time so far, or nil when one cannot
// be read.
func (m cpuMeter) sample() []time.Duration {
	out := make([]time.Duration, len(m.pids))
	for i, pid := range m.pids {
		t, err := cpuTime(pid)
		if err != nil {
			return nil
		}
		out[i] = t
	}
	return out
}

// since returns the CPU time each process used since before (nil when
// either sample is missing).
func (m cpuMeter) since(before []time.Duration) []time.Duration {
	after := m.sample()
	if before == nil || after == nil {
		return nil
	}
	for i := range after {
		after[i] -= before[i]
	}
	return after
}
