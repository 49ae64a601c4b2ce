package cli

import (
	"context"

	"github.com/spf13/cobra"
)

func (app *App) newConfigShowCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show the effective configuration and where each value came from",
		Long: `Show every configuration key, its effective value, and where the value came
from: the built-in default, the config file ($XDG_CONFIG_HOME/banger/config.toml)
or a BANGER_<KEY> environment variable. Paths derive from the XDG variables.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runConfigShow(cmd.Context(), cmd, output)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func (app *App) runConfigShow(_ context.Context, cmd *cobra.Command, output string) error {
	if err := checkOutput(cmd, output); err != nil {
		return err
	}
	cfg, err := app.config()
	if err != nil {
		return err
	}
	settings := cfg.Settings()
	p := cfg.Paths
	if output == "json" {
		return writeJSON(app.Stdout, map[string]any{"settings": settings, "paths": map[string]string{
			"config_file": p.ConfigFile, "state_dir": p.StateDir, "data_dir": p.DataDir, "runtime_dir": p.RuntimeDir,
			"cache_dir": p.CacheDir, "socket": p.Socket(), "database": p.Database(), "daemon_log": p.DaemonLog(),
		}})
	}
	t := newTable(app.Stdout, "KEY", "VALUE", "SOURCE", "DESCRIPTION")
	for _, s := range settings {
		src := string(s.Source)
		if s.Origin != "" && s.Source != "file" {
			src += " (" + s.Origin + ")"
		}
		t.row(s.Key, dash(s.Value), src, s.Help)
	}
	if err := t.flush(); err != nil {
		return err
	}
	app.Stdout.Write([]byte("\n"))
	return kv(app.Stdout, "config file", p.ConfigFile, "state", p.StateDir, "data", p.DataDir, "runtime", p.RuntimeDir, "cache", p.CacheDir)
}
