// Command bench is a load tool for a SOCKS5 proxy into Tor (tinytor or C
// tor alike). It runs N concurrent streams, each a plain HTTP/1.0 GET over
// its own SOCKS5 connection (destination given by hostname, so the proxy
// resolves it), for a request count or a duration, and prints throughput,
// errors by kind and latency percentiles for the SOCKS connect, the first
// response byte and the complete response.
//
//	go run ./scripts/bench -socks 127.0.0.1:9050 -url http://example.com/ -c 10 -n 100
//	go run ./scripts/bench -url http://xyz.onion/big -c 4 -d 30s -user-per-worker
//
// It is not part of the tinytor binary.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"
)

func main() {
	var cfg Config
	flag.StringVar(&cfg.Proxy, "socks", "127.0.0.1:9050", "SOCKS5 proxy `address`")
	flag.StringVar(&cfg.URL, "url", "", "http:// `URL` to fetch (required)")
	flag.IntVar(&cfg.Workers, "c", 10, "concurrent streams")
	flag.IntVar(&cfg.Count, "n", 100, "total requests (0: run for -d)")
	flag.DurationVar(&cfg.Duration, "d", 0, "run for this long (0: until -n requests); with -n, whichever ends first")
	flag.DurationVar(&cfg.Timeout, "timeout", time.Minute, "per-request timeout")
	flag.BoolVar(&cfg.UserPerWorker, "user-per-worker", false, "give each worker its own SOCKS username (Tor isolates their circuits)")
	flag.Parse()
	if cfg.URL == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	if cfg.Duration > 0 && !isFlagSet("n") {
		cfg.Count = 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	res.Print(os.Stdout)
	if res.OK == 0 {
		os.Exit(1)
	}
}

func isFlagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
