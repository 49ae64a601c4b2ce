package cli

import (
	"net/netip"

	"github.com/spf13/cobra"

	"banger/internal/dns"
	"banger/internal/system"
)

func (app *App) newDNSCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "Make NAME.vm resolve on the host (systemd-resolved, dnsmasq)",
		Long: `bangerd serves the .vm zone itself: on the loopback listener (dns_listen,
127.0.0.1:42069 by default) for the host, and on the bridge address for the
guests. 'banger dns setup' routes ~vm to it in the host's resolver, so that
ssh, curl and browsers resolve NAME.vm. Nothing changes until you run it.`,
	}
	cmd.AddCommand(app.newDNSSetupCommand(), app.newDNSStatusCommand(), app.newDNSTeardownCommand())
	return cmd
}

func (app *App) dnsHostConfig() (dns.HostConfig, error) {
	cfg, err := app.config()
	if err != nil {
		return dns.HostConfig{}, err
	}
	subnet, err := netip.ParsePrefix(cfg.Subnet)
	if err != nil {
		return dns.HostConfig{}, err
	}
	return dns.HostConfigFor(cfg.Bridge, subnet, cfg.DNSListen, cfg.DNSGuestPort)
}

func dnsDeps() dns.HostDeps {
	return dns.HostDeps{Privileged: system.Privileged(), Plain: system.Plain()}
}
