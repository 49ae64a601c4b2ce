// Package tui is banger's full-screen terminal UI, a Bubble Tea program over
// the daemon's typed API client. It keeps no state of its own: it lists VMs
// and images through the client, follows the daemon's event stream for state
// changes, re-fetches the list every few seconds for live CPU and memory
// figures, and runs every action as an API call. It never runs commands
// itself; SSH is handed in by the CLI as a tea.ExecCommand.
package tui
