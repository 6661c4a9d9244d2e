// Package exits holds big-iron's VM-exit handling tables, in pure Go: the
// guest-visible CPUID policy, the I/O-port device table, the MSR table,
// per-reason exit statistics, and a Dispatcher that turns a decoded VM
// exit into an Action for the bare-metal loop to apply. Nothing here
// touches the VMCS: the caller reads the exit fields, calls
// Dispatcher.Handle, and writes back what the Action says (advance RIP,
// inject an event, halt). Handling a CPUID, port I/O or MSR exit
// allocates nothing.
package exits
