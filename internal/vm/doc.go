// Package vm holds banger's virtual machine domain type and its pure rules:
// valid names, sizes, the lifecycle state machine, and a boot's timeline
// read from its console. It does no I/O.
package vm
