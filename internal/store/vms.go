package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"

	"banger/internal/vm"
)

const vmColumns = `v.id, v.name, v.state, v.reason, v.image_id, i.name, v.cpus, v.memory_mib, v.disk_bytes,
	v.ip, v.mac, v.tap, v.dir, v.state_dir, v.socket, v.pid, v.pid_start, v.hidden, v.created_at, v.started_at, v.layout, i.rootfs`

const vmFrom = ` FROM vms v JOIN images i ON i.id = v.image_id`

type scanner interface{ Scan(dest ...any) error }

func scanVM(r scanner) (vm.VM, error) {
	var v vm.VM
	var state, ip, layout string
	var created, started int64
	var hidden int
	err := r.Scan(&v.ID, &v.Name, &state, &v.Reason, &v.ImageID, &v.ImageName, &v.CPUs, &v.MemoryMiB, &v.DiskBytes,
		&ip, &v.MAC, &v.TAP, &v.Dir, &v.StateDir, &v.Socket, &v.Process.PID, &v.Process.StartTime, &hidden, &created, &started, &layout, &v.Base)
	if err != nil {
		return v, err
	}
	v.State = vm.State(state)
	v.Layout = vm.Layout(layout)
	v.Hidden = hidden != 0
	v.CreatedAt = fromUnixNano(created)
	v.StartedAt = fromUnixNano(started)
	if ip != "" {
		if v.IP, err = netip.ParseAddr(ip); err != nil {
			return v, fmt.Errorf("vm %s has a malformed address %q in the database: %w", v.Name, ip, err)
		}
	}
	return v, nil
}

// addrText stores an address as text, the zero address as "".
func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// CreateVM inserts a new VM. A taken name gives ErrExists.
func (s *Store) CreateVM(ctx context.Context, v *vm.VM) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO vms (id, name, state, reason, image_id, cpus, memory_mib, disk_bytes,
		ip, mac, tap, dir, state_dir, socket, pid, pid_start, hidden, created_at, started_at, layout)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		v.ID, v.Name, string(v.State), v.Reason, v.ImageID, v.CPUs, v.MemoryMiB, v.DiskBytes,
		addrText(v.IP), v.MAC, v.TAP, v.Dir, v.StateDir, v.Socket, v.Process.PID, v.Process.StartTime, boolInt(v.Hidden),
		unixNano(v.CreatedAt), unixNano(v.StartedAt), string(v.LayoutOrClone()))
	return s.wrap("recording vm "+v.Name, err)
}

// UpdateVM writes every mutable field of v.
func (s *Store) UpdateVM(ctx context.Context, v *vm.VM) error {
	res, err := s.db.ExecContext(ctx, `UPDATE vms SET state=?, reason=?, cpus=?, memory_mib=?, disk_bytes=?, ip=?, mac=?, tap=?,
		pid=?, pid_start=?, hidden=?, started_at=? WHERE id=?`,
		string(v.State), v.Reason, v.CPUs, v.MemoryMiB, v.DiskBytes, addrText(v.IP), v.MAC, v.TAP,
		v.Process.PID, v.Process.StartTime, boolInt(v.Hidden), unixNano(v.StartedAt), v.ID)
	if err != nil {
		return s.wrap("updating vm "+v.Name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("updating vm %s: %w", v.Name, ErrNotFound)
	}
	return nil
}

// VM returns the VM with the given name.
func (s *Store) VM(ctx context.Context, name string) (vm.VM, error) {
	v, err := scanVM(s.db.QueryRowContext(ctx, "SELECT "+vmColumns+vmFrom+" WHERE v.name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return v, fmt.Errorf("vm %s: %w", name, ErrNotFound)
	}
	return v, s.wrap("reading vm "+name, err)
}

// VMs returns every VM, ordered by name.
func (s *Store) VMs(ctx context.Context) ([]vm.VM, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+vmColumns+vmFrom+" ORDER BY v.name")
	if err != nil {
		return nil, s.wrap("listing vms", err)
	}
	defer rows.Close()
	var out []vm.VM
	for rows.Next() {
		v, err := scanVM(rows)
		if err != nil {
			return nil, s.wrap("reading vm row", err)
		}
		out = append(out, v)
	}
	return out, s.wrap("listing vms", rows.Err())
}

// DeleteVM removes a VM row.
func (s *Store) DeleteVM(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, "DELETE FROM vms WHERE id = ?", id)
	return s.wrap("deleting vm "+id, err)
}

// CountVMs returns the number of VMs per state.
func (s *Store) CountVMs(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT state, count(*) FROM vms GROUP BY state")
	if err != nil {
		return nil, s.wrap("counting vms", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, s.wrap("counting vms", err)
		}
		out[st] = n
	}
	return out, s.wrap("counting vms", rows.Err())
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
