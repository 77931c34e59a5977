package demonode

import "syscall"

// sethostname sets the kernel's host name (in the node's UTS namespace;
// it needs CAP_SYS_ADMIN there).
func sethostname(name string) error { return syscall.Sethostname([]byte(name)) }
