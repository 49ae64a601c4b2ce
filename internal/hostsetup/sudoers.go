package hostsetup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"banger/internal/system"
)

// SudoersFileName returns the name of a user's rule in /etc/sudoers.d.
// sudo skips files whose name holds a '.', so a '.' in the user name
// becomes '_'.
func SudoersFileName(user string) string {
	return "banger-" + strings.ReplaceAll(user, ".", "_")
}

// checkSudoersPath refuses a helper path sudoers would read as more than
// one plain command path.
func checkSudoersPath(p string) error {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._+-") != "" {
		return fmt.Errorf("helper path %q: want an absolute, clean path of letters, digits and / . _ + -", p)
	}
	return nil
}

// SudoersRule returns the sudoers file that lets the user with uid run the
// helper at helper as root without a password, with any arguments (the
// helper checks them), and nothing else. The user is named by uid (#1001),
// which needs no quoting. NOSETENV keeps the caller's environment out.
func SudoersRule(user string, uid int, helper string) (string, error) {
	if err := checkSudoersPath(helper); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# banger: %s's bangerd may run banger's privileged helper as root, and nothing else.\n", user)
	fmt.Fprintf(&b, "# Written by `sudo banger system setup`; `sudo banger system setup --remove --user %s` removes it.\n", user)
	fmt.Fprintf(&b, "#%d ALL=(root) NOPASSWD:NOSETENV: %s\n", uid, helper)
	return b.String(), nil
}

// installSudoers writes content to dir/name, checked by `visudo -c -f`
// before it is moved into place with mode 0440. An identical file is left
// alone. It reports whether it wrote.
func installSudoers(ctx context.Context, run system.Runner, visudo, dir, name, content string) (bool, error) {
	final := filepath.Join(dir, name)
	if cur, err := os.ReadFile(final); err == nil && bytes.Equal(cur, []byte(content)) {
		if st, err := os.Stat(final); err == nil && st.Mode().Perm() == 0o440 {
			return false, nil
		}
	}
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return false, fmt.Errorf("writing sudoers rule: %s is not a directory (is sudo installed? `apt-get install sudo`)", dir)
	}
	// sudo ignores names containing '.', so the file under check is never
	// read as a rule even if this process dies before removing it.
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return false, fmt.Errorf("writing sudoers rule: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return false, fmt.Errorf("writing sudoers rule: %w", err)
	}
	if err := tmp.Chmod(0o440); err != nil {
		tmp.Close()
		return false, fmt.Errorf("writing sudoers rule: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("writing sudoers rule: %w", err)
	}
	if err := run.Run(ctx, visudo, "-c", "-q", "-f", tmp.Name()); err != nil {
		return false, fmt.Errorf("checking the sudoers rule with visudo (nothing installed): %w", err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return false, fmt.Errorf("writing sudoers rule %s: %w", final, err)
	}
	return true, nil
}

// removeFile removes path and reports whether it was there.
func removeFile(path string) (bool, error) {
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("removing %s: %w", path, err)
	}
	return true, nil
}
