// Command kwok is kwok v0.8.0's controller (sigs.k8s.io/kwok/cmd/kwok) for the test tier:
// it makes Nodes of the real API server look alive (status, lease heartbeats), moves pods
// bound to them to Running, and serves their kubelet API, whose exec, attach and
// port-forward run local processes as its Exec, Attach and PortForward configurations say.
// It is built and started by tests/apiserver (build.py, harness.py); nothing here is
// shipped. It is a module of its own because kwok needs newer Kubernetes modules than the
// API server next to it.
//
// The same program as kwok's cmd/kwok/main.go, plus one addition: the process shuts down
// when its parent goes away, as the test API server does, so a test run killed hard leaves
// no kwok behind. build.py also patches one file of kwok (patches/): a command's non-zero
// exit reaches kubectl as its exit code.
package main

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"sigs.k8s.io/kwok/pkg/config"
	"sigs.k8s.io/kwok/pkg/kwok/cmd"
	"sigs.k8s.io/kwok/pkg/log"
	"sigs.k8s.io/kwok/pkg/utils/signals"
)

func main() {
	parent := os.Getppid()
	go func() {
		for range time.Tick(time.Second) {
			if os.Getppid() != parent {
				fmt.Fprintf(os.Stderr, "kwok: parent %d is gone\n", parent)
				_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
				return
			}
		}
	}()

	flagset := pflag.NewFlagSet("global", pflag.ContinueOnError)
	flagset.ParseErrorsAllowlist.UnknownFlags = true
	flagset.Usage = func() {}

	ctx := signals.SetupSignalContext()
	ctx, logger := log.InitFlags(ctx, flagset)

	ctx, err := config.InitFlags(ctx, flagset)
	if err != nil {
		_, _ = os.Stderr.Write([]byte(flagset.FlagUsages()))
		logger.Error("Init config flags", "err", err)
		os.Exit(1)
	}

	command := cmd.NewCommand(ctx)
	command.PersistentFlags().AddFlagSet(flagset)
	if err := command.ExecuteContext(ctx); err != nil {
		logger.Error("Execute exit", "err", err)
		os.Exit(1)
	}
}
