// Command kube-apiserver-etcd is a test-only kube-apiserver with an embedded etcd.
//
// It starts a single-member etcd on 127.0.0.1 (free ports, data in --etcd-data-dir),
// waits until it serves, then runs the real kube-apiserver command
// (k8s.io/kubernetes/cmd/kube-apiserver/app) with every other argument plus
// --etcd-servers pointing at the embedded etcd. It is built and started by
// tests/apiserver/conftest.py; nothing here is shipped.
//
// Own flags (all others go to kube-apiserver, unchanged):
//
//	--etcd-data-dir=DIR          etcd data directory (required)
//	--etcd-log-level=LEVEL       etcd's zap log level (default "error")
//	--etcd-fsync=BOOL            fsync etcd's WAL and db (default false: test data only)
//	--hard-shutdown-timeout=DURATION  hard exit this long after SIGTERM/SIGINT (default 20s)
//	--exit-with-parent=BOOL      shut down when the parent process goes away (default true)
package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // as in cmd/kube-apiserver: time zone support for CronJob

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as in cmd/kube-apiserver
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as in cmd/kube-apiserver
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as in cmd/kube-apiserver
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

type options struct {
	dataDir         string
	logLevel        string
	fsync           bool
	shutdownTimeout time.Duration
	exitWithParent  bool
}

var ownFlags = map[string]bool{
	"etcd-data-dir": true, "etcd-log-level": true, "etcd-fsync": true,
	"hard-shutdown-timeout": true, "exit-with-parent": true,
}

// splitArgs takes this program's own flags out of args and returns the rest untouched.
func splitArgs(args []string) (options, []string, error) {
	o := options{logLevel: "error", shutdownTimeout: 20 * time.Second, exitWithParent: true}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "--") {
			rest = append(rest, a)
			continue
		}
		if !ownFlags[name] {
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return o, nil, fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			value = args[i]
		}
		var err error
		switch name {
		case "etcd-data-dir":
			o.dataDir = value
		case "etcd-log-level":
			o.logLevel = value
		case "etcd-fsync":
			o.fsync, err = strconv.ParseBool(value)
		case "hard-shutdown-timeout":
			o.shutdownTimeout, err = time.ParseDuration(value)
		case "exit-with-parent":
			o.exitWithParent, err = strconv.ParseBool(value)
		}
		if err != nil {
			return o, nil, fmt.Errorf("flag --%s: %w", name, err)
		}
	}
	if o.dataDir == "" {
		return o, nil, fmt.Errorf("--etcd-data-dir is required")
	}
	for _, a := range rest {
		if strings.HasPrefix(a, "--etcd-servers") {
			return o, nil, fmt.Errorf("--etcd-servers is set by this program; do not pass it")
		}
	}
	return o, rest, nil
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startEtcd(o options) (*embed.Etcd, string, error) {
	var lastErr error
	// Ports are picked free and then bound by etcd: retry in the unlikely case of a race.
	for attempt := 0; attempt < 5; attempt++ {
		clientPort, err := freePort()
		if err != nil {
			return nil, "", err
		}
		peerPort, err := freePort()
		if err != nil {
			return nil, "", err
		}
		clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort))}
		peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort))}

		cfg := embed.NewConfig()
		cfg.Name = "jitgate-test"
		cfg.Dir = o.dataDir
		cfg.Logger = "zap"
		cfg.LogLevel = o.logLevel
		cfg.LogOutputs = []string{"stderr"}
		cfg.UnsafeNoFsync = !o.fsync
		cfg.ListenClientUrls = []url.URL{clientURL}
		cfg.AdvertiseClientUrls = []url.URL{clientURL}
		cfg.ListenPeerUrls = []url.URL{peerURL}
		cfg.AdvertisePeerUrls = []url.URL{peerURL}
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
		cfg.InitialClusterToken = "jitgate-test"
		cfg.ListenMetricsUrls = nil
		// One member, nothing to elect against: a short election timeout only shortens
		// the wait for the first leader at start-up (default 1 s).
		cfg.TickMs = 50
		cfg.ElectionMs = 250

		e, err := embed.StartEtcd(cfg)
		if err != nil {
			lastErr = err
			continue
		}
		select {
		case <-e.Server.ReadyNotify():
			return e, clientURL.String(), nil
		case err := <-e.Err():
			e.Close()
			lastErr = fmt.Errorf("etcd failed while starting: %w", err)
		case <-time.After(60 * time.Second):
			e.Server.Stop()
			e.Close()
			return nil, "", fmt.Errorf("etcd not ready after 60s")
		}
	}
	return nil, "", lastErr
}

func main() {
	o, rest, err := splitArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "kube-apiserver-etcd: %v\n", err)
		os.Exit(2)
	}

	start := time.Now()
	etcd, etcdURL, err := startEtcd(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kube-apiserver-etcd: starting etcd: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "kube-apiserver-etcd: etcd ready at %s in %s\n", etcdURL, time.Since(start).Round(time.Millisecond))

	// kube-apiserver installs its own SIGTERM/SIGINT handler (graceful shutdown, then
	// os.Exit(1) on a second signal) when the command is built. This one only bounds
	// the shutdown, so a hung graceful termination cannot outlive the test run.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		sig := <-signals
		fmt.Fprintf(os.Stderr, "kube-apiserver-etcd: %s received, shutting down\n", sig)
		time.Sleep(o.shutdownTimeout)
		fmt.Fprintf(os.Stderr, "kube-apiserver-etcd: shutdown took longer than %s, exiting\n", o.shutdownTimeout)
		etcd.Close()
		os.Exit(1)
	}()
	go func() {
		err := <-etcd.Err()
		if err != nil {
			fmt.Fprintf(os.Stderr, "kube-apiserver-etcd: etcd failed: %v\n", err)
			os.Exit(1)
		}
	}()
	if o.exitWithParent {
		parent := os.Getppid()
		go func() {
			for range time.Tick(time.Second) {
				if os.Getppid() != parent {
					fmt.Fprintf(os.Stderr, "kube-apiserver-etcd: parent %d is gone\n", parent)
					_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
					return
				}
			}
		}()
	}

	command := app.NewAPIServerCommand()
	command.SetArgs(append(rest, "--etcd-servers="+etcdURL))
	code := cli.Run(command)

	etcd.Close()
	os.Exit(code)
}
