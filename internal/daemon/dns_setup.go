package daemon

import (
	"context"
	"net/http"

	"banger/internal/api"
)

// settingDNSSetup records that the user ran `banger dns setup`.
const settingDNSSetup = "dns.setup"

func (d *Daemon) handleDNSSetup(w http.ResponseWriter, r *http.Request) {
	var req api.DNSSetupRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	res, err := d.dnsSetup(r.Context(), !req.Remove)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// dnsSetup records the user's choice and applies it to the host's
// resolver. The choice is recorded first: a setup that must wait for the
// bridge is applied by networkUp.
func (d *Daemon) dnsSetup(ctx context.Context, on bool) (api.DNSSetup, error) {
	if d.deps.Resolver == nil {
		return api.DNSSetup{}, api.Errorf(api.CodePrecondition, "this bangerd cannot change the host's resolver: it has no network allocation").
			WithHint("run `sudo banger system setup` once for this user (`banger doctor` says what is missing)")
	}
	value := ""
	if on {
		value = "on"
	}
	if err := d.store.SetSetting(ctx, settingDNSSetup, value); err != nil {
		return api.DNSSetup{}, err
	}
	return d.deps.Resolver.Apply(ctx, on)
}

// networkUp makes sure the bridge, NAT and guest resolver exist. The first
// time in this daemon, it also re-applies `banger dns setup`:
// systemd-resolved forgets a link's settings when the link goes away.
func (d *Daemon) networkUp(ctx context.Context) error {
	if err := d.deps.Network.Ensure(ctx); err != nil {
		return err
	}
	if d.netReady.Swap(true) || d.deps.Resolver == nil {
		return nil
	}
	if v, err := d.store.Setting(ctx, settingDNSSetup); err != nil || v == "" {
		return err
	}
	if _, err := d.deps.Resolver.Apply(ctx, true); err != nil {
		d.log.Warn("re-applying dns setup; NAME.vm may not resolve on the host (run `banger dns status`)", "err", err)
	} else {
		d.log.Info("re-applied dns setup for the bridge")
	}
	return nil
}
