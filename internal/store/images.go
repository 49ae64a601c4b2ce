package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"banger/internal/image"
)

const imageColumns = `id, name, source, dir, kernel, vmlinux, initrd, rootfs, manifest, manifest_sha256,
	packages_sha256, kernel_version, size_bytes, build_log, created_at`

func scanImage(r scanner) (image.Image, error) {
	var i image.Image
	var src string
	var created int64
	err := r.Scan(&i.ID, &i.Name, &src, &i.Dir, &i.Kernel, &i.Vmlinux, &i.Initrd, &i.Rootfs, &i.Manifest, &i.ManifestSHA256,
		&i.PackagesSHA256, &i.KernelVersion, &i.SizeBytes, &i.BuildLog, &created)
	i.Source = image.Source(src)
	i.CreatedAt = fromUnixNano(created)
	return i, err
}

// CreateImage registers an image. A taken name gives ErrExists.
func (s *Store) CreateImage(ctx context.Context, i *image.Image) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO images (`+imageColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		i.ID, i.Name, string(i.Source), i.Dir, i.Kernel, i.Vmlinux, i.Initrd, i.Rootfs, i.Manifest, i.ManifestSHA256,
		i.PackagesSHA256, i.KernelVersion, i.SizeBytes, i.BuildLog, unixNano(i.CreatedAt))
	return s.wrap("registering image "+i.Name, err)
}

// Image returns an image by name.
func (s *Store) Image(ctx context.Context, name string) (image.Image, error) {
	i, err := scanImage(s.db.QueryRowContext(ctx, "SELECT "+imageColumns+" FROM images WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return i, fmt.Errorf("image %s: %w", name, ErrNotFound)
	}
	return i, s.wrap("reading image "+name, err)
}

// Images returns every image, ordered by name.
func (s *Store) Images(ctx context.Context) ([]image.Image, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+imageColumns+" FROM images ORDER BY name")
	if err != nil {
		return nil, s.wrap("listing images", err)
	}
	defer rows.Close()
	var out []image.Image
	for rows.Next() {
		i, err := scanImage(rows)
		if err != nil {
			return nil, s.wrap("reading image row", err)
		}
		out = append(out, i)
	}
	return out, s.wrap("listing images", rows.Err())
}

// DeleteImage removes an image row; an image still used by a VM gives ErrInUse.
func (s *Store) DeleteImage(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, "DELETE FROM images WHERE id = ?", id)
	return s.wrap("deleting image "+id, err)
}

// ImageUsers counts the VMs made from each image, by image id.
func (s *Store) ImageUsers(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT image_id, count(*) FROM vms GROUP BY image_id")
	if err != nil {
		return nil, s.wrap("counting image users", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, s.wrap("counting image users", err)
		}
		out[id] = n
	}
	return out, s.wrap("counting image users", rows.Err())
}
