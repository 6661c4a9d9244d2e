module github.com/big-iron/big-iron

go 1.26.0

require (
	github.com/google/btree v1.1.2 // indirect
	github.com/usbarmory/tamago v1.26.0 // indirect
	go.etcd.io/raft/v3 v3.7.0 // indirect
	golang.org/x/arch v0.32.0 // indirect
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/exp v0.0.0-20231110203233-9a3e6036ecaa // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/term v0.48.0 // indirect
	golang.org/x/time v0.12.0 // indirect
	google.golang.org/protobuf v1.36.11 // indirect
	gvisor.dev/gvisor v0.0.0-20260413194555-9680d69bf798 // indirect
)

tool github.com/usbarmory/tamago/cmd/tamago
