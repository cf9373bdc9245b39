// Command loadgen loads an HTTPS admission webhook on 127.0.0.1 the way the kube-apiserver
// calls one (Go over TLS, HTTP/1.1 keep-alive, one request in flight per connection), for
// `make bench` (tests/bench/webhook_bench.py). Standard library only; dev tooling, never
// shipped. The result is one JSON object on stdout.
//
// Modes:
//
//   - closed (-conns, -warmup, -duration): that many keep-alive connections, each sending its
//     next request as soon as the previous one is answered: the throughput figure.
//   - open (-rate, -duration, -timeout, -max-conns, -max-idle): requests sent on a fixed schedule,
//     whether or not earlier ones were answered, each on an idle connection or a new one (the
//     API server's webhook client opens more connections under load) up to -max-conns,
//     keeping at most -max-idle of them open while idle (client-go's transport keeps 25). A
//     request due while all of them are busy is not sent and is counted as such (the API
//     server's own in-flight limit refuses requests beyond its bound too). Each request has a
//     deadline -timeout after its scheduled time (the webhook timeout); no answer by then
//     counts as timed out and its connection is closed, as the API server's client does.
//     Latency is measured from the scheduled time, connection set-up included.
//
// Every request carries a uid of its own: each occurrence of -slot in the body is replaced.
// Requests are written as prebuilt bytes and answers read by Content-Length, rather than
// through net/http, so that the client costs a fraction of the server's CPU per request (~50
// µs, two thirds of it the kernel's) and cannot be what limits the figures.
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	addr, path, slot, mode string
	ca, body               []byte
	conns, maxConns        int
	maxIdle                int
	rate                   float64
	warmup, duration       time.Duration
	timeout                time.Duration
	latencies              bool
}

// denial is what the answers denied with one reason had in common: how many, and a message.
type denial struct {
	Count   int    `json:"count"`
	Message string `json:"message"`
}

// tally counts the outcomes of requests; one per run, shared under its lock.
type tally struct {
	mu         sync.Mutex
	Sent       int                `json:"sent"`
	NotSent    int                `json:"not_sent"` // open: due while every connection was busy
	Answered   int                `json:"answered"` // all answers, warm-up included
	Allowed    int                `json:"allowed"`
	Denied     int                `json:"denied"`
	Denials    map[string]*denial `json:"denials"`  // by the status' reason
	Statuses   map[string]int     `json:"statuses"` // answers other than 200
	Malformed  int                `json:"malformed"`
	TimedOut   int                `json:"timed_out"`
	ConnErrors int                `json:"connection_errors"`
	Opened     int                `json:"connections_opened"`
	samples    []time.Duration
	dialed     []bool // whether samples[i]'s connection was opened for it
}

// report is the JSON printed at the end.
type report struct {
	Mode     string  `json:"mode"`
	Seconds  float64 `json:"seconds"`  // measured (closed) or offered (open)
	Elapsed  float64 `json:"elapsed"`  // from the first request to the last outcome
	Measured int     `json:"measured"` // answers within the measured seconds
	latency
	// Open: the answers on a connection opened for them (TLS handshake included) apart.
	OnNewConnections  *latency `json:"on_new_connections,omitempty"`
	OnKeptConnections *latency `json:"on_kept_connections,omitempty"`
	CPU               float64  `json:"cpu_seconds"`            // this process's, user and system
	Latencies         []int64  `json:"latencies_us,omitempty"` // with -latencies: every measured one
	*tally
}

// latency sums up answers' latencies.
type latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func summary(samples []time.Duration) latency {
	samples = slices.Clone(samples)
	slices.Sort(samples)
	n := len(samples)
	if n == 0 {
		return latency{}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return latency{n, ms(samples[n/2]), ms(samples[n*99/100]), ms(samples[n-1])}
}

func main() {
	o := parse()
	t := &tally{Denials: map[string]*denial{}, Statuses: map[string]int{}}
	start := time.Now()
	if o.mode == "closed" {
		closedLoop(o, t)
	} else {
		openLoop(o, t)
	}
	r := report{Mode: o.mode, Seconds: o.duration.Seconds(), Elapsed: time.Since(start).Seconds(),
		Measured: len(t.samples), latency: summary(t.samples), tally: t}
	if o.mode == "open" {
		var onNew, onKept []time.Duration
		for i, d := range t.samples {
			if t.dialed[i] {
				onNew = append(onNew, d)
			} else {
				onKept = append(onKept, d)
			}
		}
		newSummary, keptSummary := summary(onNew), summary(onKept)
		r.OnNewConnections, r.OnKeptConnections = &newSummary, &keptSummary
	}
	slices.Sort(t.samples)
	if o.latencies {
		r.Latencies = make([]int64, len(t.samples))
		for i, d := range t.samples {
			r.Latencies[i] = d.Microseconds()
		}
	}
	var usage syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &usage) == nil {
		r.CPU = time.Duration(usage.Utime.Nano() + usage.Stime.Nano()).Seconds()
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		fail(1, err.Error())
	}
}

func fail(code int, message string) {
	fmt.Fprintln(os.Stderr, "loadgen:", message)
	os.Exit(code)
}

// parse reads the flags; unknown flags, stray arguments and bad values exit 2.
func parse() options {
	var o options
	var caFile, bodyFile string
	flag.StringVar(&o.addr, "addr", "", "host:port of the webhook (127.0.0.1 only)")
	flag.StringVar(&caFile, "ca", "", "PEM file of the CA that signed the webhook's certificate")
	flag.StringVar(&bodyFile, "body", "", "file holding the request body (an AdmissionReview)")
	flag.StringVar(&o.path, "path", "/validate", "request path, query included")
	flag.StringVar(&o.slot, "slot", "00000000-0000-0000-0000-000000000000", "uid placeholder in the body")
	flag.StringVar(&o.mode, "mode", "closed", "closed (fixed connections) or open (fixed rate)")
	flag.IntVar(&o.conns, "conns", 16, "closed: connections, one request in flight each")
	flag.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "closed: load before measuring")
	flag.DurationVar(&o.duration, "duration", 1500*time.Millisecond, "measured (closed) or offered (open) duration")
	flag.Float64Var(&o.rate, "rate", 0, "open: requests per second offered")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Second, "deadline of each request (open: the webhook timeout)")
	flag.IntVar(&o.maxConns, "max-conns", 1000, "open: most connections at once")
	flag.IntVar(&o.maxIdle, "max-idle", 25, "open: most idle connections kept (client-go's)")
	flag.BoolVar(&o.latencies, "latencies", false, "print every measured latency (µs) too")
	flag.Parse()
	if flag.NArg() > 0 {
		fail(2, fmt.Sprintf("unexpected argument %q (flags only; -h lists them)", flag.Arg(0)))
	}
	if len(o.slot) != 0 && len(o.slot) != 36 {
		fail(2, fmt.Sprintf("-slot %q: a uid's 36 characters (or empty: no uid replaced)", o.slot))
	}
	host, _, err := net.SplitHostPort(o.addr)
	if err != nil || host != "127.0.0.1" {
		fail(2, fmt.Sprintf("-addr %q: must be 127.0.0.1:PORT", o.addr))
	}
	switch {
	case o.mode != "closed" && o.mode != "open":
		fail(2, fmt.Sprintf("-mode %q: closed or open", o.mode))
	case o.duration <= 0 || o.duration > time.Minute || o.timeout <= 0 || o.warmup < 0:
		fail(2, "-duration must be in (0, 1m], -timeout positive, -warmup not negative")
	case o.mode == "closed" && (o.conns < 1 || o.conns > 1000):
		fail(2, "-conns must be in [1, 1000]")
	case o.mode == "open" && (o.rate <= 0 || o.rate*o.duration.Seconds() > maxRequests):
		fail(2, "-rate must be positive and -rate x -duration at most 1,000,000 requests")
	case o.mode == "open" && (o.maxConns < 1 || o.maxConns > 10000):
		fail(2, "-max-conns must be in [1, 10000]")
	case o.mode == "open" && (o.maxIdle < 1 || o.maxIdle > o.maxConns):
		fail(2, "-max-idle must be in [1, -max-conns]")
	}
	if o.ca, err = os.ReadFile(caFile); err != nil {
		fail(2, fmt.Sprintf("-ca: %v", err))
	}
	if o.body, err = os.ReadFile(bodyFile); err != nil {
		fail(2, fmt.Sprintf("-body: %v", err))
	}
	return o
}

// client is one keep-alive connection with its own copy of the request, uid slots marked.
type client struct {
	conn    *tls.Conn
	reader  *bufio.Reader
	request []byte
	slots   []int // offsets of the uid placeholder in request
}

// maxRequests bounds a run in requests as -duration bounds it in time.
const maxRequests = 1_000_000

var uids atomic.Uint64

// uidPrefix makes this run's uids differ from any earlier run's (the webhook keeps a memo).
var uidPrefix = func() string {
	random := make([]byte, 4)
	rand.Read(random)
	return hex.EncodeToString(random)
}()

func dial(o options, config *tls.Config, deadline time.Time) (*client, error) {
	dialer := &net.Dialer{Deadline: deadline}
	conn, err := tls.DialWithDialer(dialer, "tcp", o.addr, config)
	if err != nil {
		return nil, err
	}
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"+
		"Accept: application/json\r\nContent-Length: %d\r\n\r\n", o.path, len(o.body))
	c := &client{conn: conn, reader: bufio.NewReaderSize(conn, 16<<10), request: append([]byte(head), o.body...)}
	for from := len(head); ; {
		i := bytes.Index(c.request[from:], []byte(o.slot))
		if len(o.slot) == 0 || i < 0 {
			break
		}
		c.slots = append(c.slots, from+i)
		from += i + len(o.slot)
	}
	return c, nil
}

// exchange sends one request with a fresh uid and reads its answer by `deadline`.
func (c *client) exchange(deadline time.Time) (status int, body []byte, keepAlive bool, err error) {
	uid := fmt.Appendf(nil, "%s-0000-4000-8000-%012x", uidPrefix, uids.Add(1))
	for _, at := range c.slots {
		copy(c.request[at:], uid)
	}
	c.conn.SetDeadline(deadline)
	if _, err = c.conn.Write(c.request); err != nil {
		return 0, nil, false, err
	}
	length, keepAlive := -1, true
	for {
		line, err := c.reader.ReadSlice('\n')
		if err != nil {
			return 0, nil, false, err
		}
		switch {
		case status == 0:
			if len(line) < 12 {
				return 0, nil, false, fmt.Errorf("bad status line %q", line)
			}
			status, _ = strconv.Atoi(string(line[9:12]))
		case len(line) <= 2:
			if length < 0 {
				return 0, nil, false, errors.New("answer without Content-Length")
			}
			body = make([]byte, length)
			_, err = io.ReadFull(c.reader, body)
			return status, body, keepAlive, err
		case hasPrefixFold(line, "content-length:"):
			length, _ = strconv.Atoi(string(bytes.TrimSpace(line[15:])))
		case hasPrefixFold(line, "connection:"):
			keepAlive = !bytes.EqualFold(bytes.TrimSpace(line[11:]), []byte("close"))
		}
	}
}

func hasPrefixFold(line []byte, prefix string) bool {
	return len(line) >= len(prefix) && bytes.EqualFold(line[:len(prefix)], []byte(prefix))
}

// record counts one request's outcome; its latency is kept when `measured`, with whether
// its connection was opened for it (`dialed`).
func (t *tally) record(status int, body []byte, err error, latency time.Duration, measured, dialed bool) {
	var timeout net.Error
	var review struct {
		Response struct {
			Allowed bool `json:"allowed"`
			Status  struct {
				Reason  string `json:"reason"`
				Message string `json:"message"`
			} `json:"status"`
		} `json:"response"`
	}
	allowed := err == nil && status == 200 &&
		(bytes.Contains(body, []byte(`"allowed":true`)) || bytes.Contains(body, []byte(`"allowed": true`)))
	wellFormed := allowed || (err == nil && status == 200 && json.Unmarshal(body, &review) == nil &&
		bytes.Contains(body, []byte(`"allowed"`)))
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case errors.As(err, &timeout) && timeout.Timeout():
		t.TimedOut++
		return
	case err != nil:
		t.ConnErrors++
		return
	}
	t.Answered++
	if measured {
		t.samples = append(t.samples, latency)
		t.dialed = append(t.dialed, dialed)
	}
	switch {
	case status != 200:
		t.Statuses[strconv.Itoa(status)]++
	case !wellFormed:
		t.Malformed++
	case allowed:
		t.Allowed++
	default:
		t.Denied++
		reason := review.Response.Status.Reason
		if t.Denials[reason] == nil {
			t.Denials[reason] = &denial{Message: review.Response.Status.Message}
		}
		t.Denials[reason].Count++
	}
}

func tlsConfig(o options) *tls.Config {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(o.ca) {
		fail(2, "-ca: no PEM certificate in it")
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// closedLoop keeps o.conns requests in flight until warm-up and duration are over.
func closedLoop(o options, t *tally) {
	config := tlsConfig(o)
	start := time.Now()
	warmUntil, stopAt := start.Add(o.warmup), start.Add(o.warmup+o.duration)
	var wg sync.WaitGroup
	for range o.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial(o, config, time.Now().Add(o.timeout))
			if err != nil {
				t.record(0, nil, err, 0, false, true)
				return
			}
			t.mu.Lock()
			t.Opened++
			t.mu.Unlock()
			defer c.conn.Close()
			for began := time.Now(); began.Before(stopAt); began = time.Now() {
				t.mu.Lock()
				spent := t.Sent >= maxRequests
				if !spent {
					t.Sent++
				}
				t.mu.Unlock()
				if spent {
					return
				}
				status, body, keepAlive, err := c.exchange(began.Add(o.timeout))
				// Only answers both sent and received within the measured window count
				// towards its throughput and latency.
				answered := time.Now()
				measured := began.After(warmUntil) && answered.Before(stopAt)
				t.record(status, body, err, answered.Sub(began), measured, false)
				if err != nil || !keepAlive {
					return
				}
			}
		}()
	}
	wg.Wait()
}

// openLoop sends o.rate requests per second for o.duration on up to o.maxConns connections.
func openLoop(o options, t *tally) {
	config := tlsConfig(o)
	idle := make(chan *client, o.maxIdle)
	var open atomic.Int64 // connections open or being opened
	var wg sync.WaitGroup
	send := func(c *client, due time.Time) {
		defer wg.Done()
		deadline := due.Add(o.timeout)
		dialed := c == nil
		if dialed {
			var err error
			if c, err = dial(o, config, deadline); err != nil {
				open.Add(-1)
				t.record(0, nil, err, 0, false, true)
				return
			}
			t.mu.Lock()
			t.Opened++
			t.mu.Unlock()
		}
		status, body, keepAlive, err := c.exchange(deadline)
		t.record(status, body, err, time.Since(due), true, dialed)
		if err != nil || !keepAlive {
			c.conn.Close() // as the API server's client does with a request past its deadline
			open.Add(-1)
			return
		}
		select {
		case idle <- c:
		default: // as many idle as client-go's transport keeps: this one is closed
			c.conn.Close()
			open.Add(-1)
		}
	}
	total := int(o.rate * o.duration.Seconds())
	start := time.Now()
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(float64(i) / o.rate * float64(time.Second)))
		time.Sleep(time.Until(due))
		var c *client
		select {
		case c = <-idle:
		default:
			if open.Add(1) > int64(o.maxConns) {
				open.Add(-1)
				t.mu.Lock()
				t.NotSent++
				t.mu.Unlock()
				continue
			}
		}
		t.mu.Lock()
		t.Sent++
		t.mu.Unlock()
		wg.Add(1)
		go send(c, due)
	}
	wg.Wait()
	close(idle)
	for c := range idle {
		c.conn.Close()
	}
}
