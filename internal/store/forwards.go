package store

import (
	"context"
	"fmt"
	"net/netip"

	"banger/internal/vm"
)

// Forwards returns the port forwards of the VM with id vmID, or of every VM
// when vmID is empty, ordered by VM, protocol and host port.
func (s *Store) Forwards(ctx context.Context, vmID string) ([]vm.Forward, error) {
	q := "SELECT vm_id, proto, host_addr, host_port, guest_port FROM forwards"
	var args []any
	if vmID != "" {
		q += " WHERE vm_id = ?"
		args = append(args, vmID)
	}
	rows, err := s.db.QueryContext(ctx, q+" ORDER BY vm_id, proto, host_port", args...)
	if err != nil {
		return nil, s.wrap("listing forwards", err)
	}
	defer rows.Close()
	var out []vm.Forward
	for rows.Next() {
		var f vm.Forward
		var addr string
		if err := rows.Scan(&f.VMID, &f.Proto, &addr, &f.HostPort, &f.GuestPort); err != nil {
			return nil, s.wrap("reading forward row", err)
		}
		if f.HostAddr, err = netip.ParseAddr(addr); err != nil {
			return nil, fmt.Errorf("forward of vm %s has a malformed address %q in the database: %w", f.VMID, addr, err)
		}
		out = append(out, f)
	}
	return out, s.wrap("listing forwards", rows.Err())
}

// AddForward records a forward. A host address and port already forwarded
// (for the same protocol) gives ErrExists.
func (s *Store) AddForward(ctx context.Context, f vm.Forward) error {
	_, err := s.db.ExecContext(ctx, "INSERT INTO forwards (vm_id, proto, host_addr, host_port, guest_port) VALUES (?,?,?,?,?)",
		f.VMID, f.Proto, f.HostAddr.String(), f.HostPort, f.GuestPort)
	return s.wrap("recording forward "+f.String(), err)
}

// RemoveForward forgets a forward; one that is not recorded gives
// ErrNotFound.
func (s *Store) RemoveForward(ctx context.Context, f vm.Forward) error {
	res, err := s.db.ExecContext(ctx, "DELETE FROM forwards WHERE vm_id = ? AND proto = ? AND host_addr = ? AND host_port = ? AND guest_port = ?",
		f.VMID, f.Proto, f.HostAddr.String(), f.HostPort, f.GuestPort)
	if err != nil {
		return s.wrap("forgetting forward "+f.String(), err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("forward %s: %w", f.String(), ErrNotFound)
	}
	return nil
}
