// Command kube-controller-manager is the real kube-controller-manager
// (k8s.io/kubernetes/cmd/kube-controller-manager/app) for the test tier, built from the
// same modules as the kube-apiserver next to it, so the garbage collector, the
// namespace, workload and autoscaler controllers act in tests. It is built and started
// by tests/apiserver (build.py, harness.py); nothing here is shipped.
//
// All arguments go to kube-controller-manager unchanged. One addition: the process
// shuts down when its parent goes away, as the test API server does, so a test run
// killed hard leaves no controller-manager behind.
package main

import (
	"fmt"
	"os"
	"syscall"
	"time"
	_ "time/tzdata" // as in cmd/kube-controller-manager: time zone support for CronJob

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as in cmd/kube-controller-manager
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as in cmd/kube-controller-manager
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as in cmd/kube-controller-manager
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	parent := os.Getppid()
	go func() {
		for range time.Tick(time.Second) {
			if os.Getppid() != parent {
				fmt.Fprintf(os.Stderr, "kube-controller-manager: parent %d is gone\n", parent)
				_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
				return
			}
		}
	}()
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
