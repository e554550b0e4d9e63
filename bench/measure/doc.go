// Package measure turns the benchmark's raw observations into numbers: it parses the
// JSON reports of iperf3 (throughput) and fortio (latency, connection rate), reads a
// process's CPU time and resident memory from /proc, and takes medians. It runs nothing
// itself; bench/cmd/ambit-bench runs the tools and feeds their output here.
package measure
