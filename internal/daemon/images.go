package daemon

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"banger/internal/api"
	"banger/internal/image"
	"banger/internal/store"
)

func (d *Daemon) imageToAPI(i *image.Image, users int) *api.Image {
	return &api.Image{
		ID: i.ID, Name: i.Name, Source: string(i.Source), Kernel: i.Kernel, Vmlinux: i.Vmlinux, Initrd: i.Initrd,
		Rootfs: i.Rootfs, Manifest: i.Manifest, ManifestSHA256: i.ManifestSHA256, PackagesSHA256: i.PackagesSHA256,
		KernelVersion: i.KernelVersion, SizeBytes: i.SizeBytes, AllocatedBytes: allocated(i.Rootfs),
		BuildLog: i.BuildLog, Stale: d.imageStale(i), VMs: users, CreatedAt: i.CreatedAt,
	}
}

func (d *Daemon) handleListImages(w http.ResponseWriter, r *http.Request) {
	imgs, err := d.store.Images(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	users, err := d.store.ImageUsers(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]*api.Image, 0, len(imgs))
	for i := range imgs {
		out = append(out, d.imageToAPI(&imgs[i], users[imgs[i].ID]))
	}
	writeJSON(w, http.StatusOK, out)
}

func (d *Daemon) handleShowImage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	img, err := d.store.Image(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, notFoundImage(name))
		return
	} else if err != nil {
		writeError(w, err)
		return
	}
	users, err := d.store.ImageUsers(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d.imageToAPI(&img, users[img.ID]))
}

func (d *Daemon) handleRemoveImage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("name")
	img, err := d.store.Image(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, notFoundImage(name))
		return
	} else if err != nil {
		writeError(w, err)
		return
	}
	vms, err := d.store.VMs(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	var users, warm []string
	for _, v := range vms {
		switch {
		case v.ImageID != img.ID:
		case isTemplate(&v):
			warm = append(warm, v.Name)
		default:
			users = append(users, v.Name)
		}
	}
	if len(users) > 0 {
		writeError(w, api.Errorf(api.CodeConflict, "image %s is used by %s", name, strings.Join(users, ", ")).
			WithHint("remove those VMs first (`banger vm rm %s`)", strings.Join(users, " ")))
		return
	}
	// Warm templates are the image's caches: they go with it.
	for _, t := range warm {
		if err := d.removeVM(ctx, t, true, nil); err != nil {
			writeError(w, fmt.Errorf("removing warm template %s of image %s: %w", t, name, err))
			return
		}
	}
	if err := d.store.DeleteImage(ctx, img.ID); err != nil {
		writeError(w, err)
		return
	}
	if img.Dir != "" && strings.HasPrefix(img.Dir, d.cfg.Paths.ImagesDir()+"/") {
		if err := os.RemoveAll(img.Dir); err != nil {
			writeError(w, fmt.Errorf("removing files of image %s in %s: %w", name, img.Dir, err))
			return
		}
	}
	d.events.publish(api.Event{Type: api.EventImageRemoved, Name: name})
	writeJSON(w, http.StatusOK, map[string]string{"removed": name})
}
