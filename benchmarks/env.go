package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// machine describes where a run happened.
type machine struct {
	nproc, gomaxprocs int
	cpu               string // model name from /proc/cpuinfo
	goVersion         string
	goos, goarch      string
	clockNs           float64 // cost of one time.Now, ns
}

// probeMachine reads the machine description.
func probeMachine() machine {
	return machine{
		nproc:      runtime.NumCPU(),
		gomaxprocs: runtime.GOMAXPROCS(0),
		cpu:        cpuModel("/proc/cpuinfo"),
		goVersion:  runtime.Version(),
		goos:       runtime.GOOS,
		goarch:     runtime.GOARCH,
		clockNs:    clockCost(),
	}
}

// cpuModel returns the first "model name" of a cpuinfo file, or "unknown".
func cpuModel(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// loadAvg returns the 1, 5 and 15 minute load averages of /proc/loadavg,
// or "unknown".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// clockCost returns the cost of one time.Now in ns, the overhead that
// timing each call adds twice to every measured decision.
func clockCost() float64 {
	const n = 1_000_000
	start := time.Now()
	var t time.Time
	for range n {
		t = time.Now()
	}
	return float64(t.Sub(start).Nanoseconds()) / n
}

// redisVersion returns the server's redis_version from INFO server.
func redisVersion(ctx context.Context, addr string) (string, error) {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return "", fmt.Errorf("INFO server on %s: %w", addr, err)
	}
	return infoField(info, "redis_version"), nil
}

// infoField returns the value of field in an INFO reply, or "unknown".
func infoField(info, field string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == field {
			return v
		}
	}
	return "unknown"
}
