package measure

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat: USER_HZ, which Linux
// fixes at 100 per second for every architecture's user ABI (proc(5)).
const clockTick = 10 * time.Millisecond

// ProcSample is one reading of a process's resource use.
type ProcSample struct {
	At  time.Time     // when it was read
	CPU time.Duration // user plus system CPU time of all its threads since it started
	RSS int64         // resident set size in bytes (VmRSS)
	HWM int64         // peak resident set size since it started, bytes (VmHWM)
}

// ReadProc reads /proc/<pid>/stat and /proc/<pid>/status.
func ReadProc(pid int) (ProcSample, error) {
	at := time.Now()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("read process %d: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("read process %d: %w", pid, err)
	}
	cpu, err := ParseStatCPU(stat)
	if err != nil {
		return ProcSample{}, err
	}
	rss, err := ParseStatusBytes(status, "VmRSS")
	if err != nil {
		return ProcSample{}, err
	}
	hwm, err := ParseStatusBytes(status, "VmHWM")
	if err != nil {
		return ProcSample{}, err
	}
	return ProcSample{At: at, CPU: cpu, RSS: rss, HWM: hwm}, nil
}

// Cores is the CPU used between two samples of one process divided by the wall time
// between them: 1.0 is one core busy the whole time. It is 0 when no time passed.
func Cores(from, to ProcSample) float64 {
	wall := to.At.Sub(from.At)
	if wall <= 0 {
		return 0
	}
	return (to.CPU - from.CPU).Seconds() / wall.Seconds()
}

// ParseStatCPU returns utime+stime (fields 14 and 15 of proc(5)'s /proc/<pid>/stat) as a
// duration. The command name (field 2) may hold spaces and parentheses, so fields are
// counted after its last ')'.
func ParseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("parse /proc stat: no command name")
	}
	f := bytes.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc stat: %d fields after the command name, want at least 13", len(f))
	}
	const maxTicks = int64(1<<62) / int64(clockTick) // keeps the sum a valid Duration
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil || n < 0 || n > maxTicks {
			return 0, fmt.Errorf("parse /proc stat: bad tick count %q", s)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// ParseStatusBytes returns a memory field of /proc/<pid>/status, such as VmRSS or
// VmHWM, in bytes (the file gives kB, meaning KiB). A status without the field (a
// kernel thread or a zombie) is an error.
func ParseStatusBytes(status []byte, field string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte(field+":"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("parse /proc status: bad %s line %q", field, sc.Bytes())
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil || kb < 0 || kb > 1<<40 {
			return 0, fmt.Errorf("parse /proc status: bad %s value %q", field, f[0])
		}
		return kb * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("parse /proc status: %w", err)
	}
	return 0, fmt.Errorf("parse /proc status: no %s", field)
}
