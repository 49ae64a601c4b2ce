// Package vm holds banger's virtual machine domain type and its pure rules:
// valid names, sizes, and the lifecycle state machine. It does no I/O.
package vm
