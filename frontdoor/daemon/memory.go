package daemon

import (
	"os"
	"strconv"
	"strings"

	"github.com/wsgate/wsgate/config"
)

// memoryBudget is server.memory_budget in bytes: as configured, or, for
// auto, half of memory_limit, or else a quarter of what the process may
// use (the cgroup's limit, or the machine's memory). 0 is off.
func memoryBudget(sv config.Server) int64 {
	switch {
	case !sv.AutoMemoryBudget:
		return sv.MemoryBudget
	case sv.MemoryLimit > 0:
		return sv.MemoryLimit / 2
	}
	return availableMemory() / 4
}

// availableMemory is the cgroup's memory limit (cgroup v2's memory.max,
// which systemd's MemoryMax sets) when it has one, else the machine's
// MemTotal; 0 when neither can be read.
func availableMemory() int64 {
	total := int64(0)
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(v)
				if len(f) >= 1 {
					kb, _ := strconv.ParseInt(f[0], 10, 64)
					total = kb << 10
				}
			}
		}
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (total == 0 || n < total) {
			return n
		}
	}
	return total
}
