module jitgate.dev/loadgen

go 1.22
