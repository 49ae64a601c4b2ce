package disk

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
)

// testKeys returns an authorized_keys line and an ed25519 host key pair.
func testKeys(t testing.TB) (authorized, hostPriv, hostPub []byte) {
	t.Helper()
	mk := func() (ed25519.PrivateKey, []byte) {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		sp, err := ssh.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return priv, ssh.MarshalAuthorizedKey(sp)
	}
	_, authorized = mk()
	priv, hostPub := mk()
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return authorized, pem.EncodeToMemory(block), hostPub
}

func testIdentity(t testing.TB) Identity {
	auth, priv, pub := testKeys(t)
	return Identity{
		Hostname:       "dev",
		Domain:         "vm",
		Address:        netip.MustParseAddr("10.77.0.5"),
		Gateway:        netip.MustParseAddr("10.77.0.1"),
		AuthorizedKeys: auth,
		HostKeyPrivate: priv,
		HostKeyPublic:  pub,
		MachineID:      "0123456789abcdef0123456789abcdef",
	}
}

func TestIdentityFiles(t *testing.T) {
	id := testIdentity(t)
	files, err := id.files()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range files {
		got[f.Path] = string(f.Data)
	}
	want := map[string]string{
		"/etc/hostname":                     "dev\n",
		"/etc/hosts":                        "127.0.0.1\tlocalhost\n10.77.0.5\tdev.vm dev\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
		"/etc/resolv.conf":                  "# Written by banger.\nnameserver 10.77.0.1\nsearch vm\n",
		"/etc/machine-id":                   "0123456789abcdef0123456789abcdef\n",
		"/root/.ssh/authorized_keys":        string(id.AuthorizedKeys),
		"/etc/ssh/ssh_host_ed25519_key":     string(id.HostKeyPrivate),
		"/etc/ssh/ssh_host_ed25519_key.pub": string(id.HostKeyPublic),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("identity files (-want +got):\n%s", diff)
	}
	for _, f := range files {
		if strings.Contains(f.Path, "authorized_keys") || strings.HasSuffix(f.Path, "_key") {
			if f.Perm != 0o600 {
				t.Errorf("%s perm %o, want 0600", f.Path, f.Perm)
			}
		}
	}
}

func TestIdentityValidation(t *testing.T) {
	_, otherPriv, _ := testKeys(t)
	for name, mutate := range map[string]func(*Identity){
		"hostname with newline": func(id *Identity) { id.Hostname = "dev\nevil" },
		"uppercase hostname":    func(id *Identity) { id.Hostname = "Dev" },
		"no resolver":           func(id *Identity) { id.Gateway = netip.Addr{} },
		"short machine id":      func(id *Identity) { id.MachineID = "abc" },
		"no authorized key":     func(id *Identity) { id.AuthorizedKeys = nil },
		"garbage key":           func(id *Identity) { id.AuthorizedKeys = []byte("ssh-ed25519 !!!\n") },
		"mismatched host key":   func(id *Identity) { id.HostKeyPrivate = otherPriv },
		"bad domain":            func(id *Identity) { id.Domain = "v m" },
	} {
		id := testIdentity(t)
		mutate(&id)
		if _, err := id.files(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	id := testIdentity(t)
	id.MachineID = ""
	files, err := id.files()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Path == "/etc/machine-id" && !isHex32(strings.TrimSpace(string(f.Data))) {
			t.Errorf("generated machine id %q", f.Data)
		}
	}
}

func TestWriteScript(t *testing.T) {
	dirs := []guestDir{{Path: "/etc", Perm: 0o755}, {Path: "/root/.ssh", Perm: 0o700}}
	files := []guestFile{{Path: "/etc/hostname", Data: []byte("x\n"), Perm: 0o644}, {Path: "/root/.ssh/authorized_keys", Data: []byte("k\n"), Perm: 0o600}}
	existing := map[string]inode{
		"/etc":                      {Type: "directory"},
		"/etc/hostname":             {Type: "regular"},
		"/etc/ssh/ssh_host_rsa_key": {Type: "regular"},
	}
	host := map[string]string{"/etc/hostname": "/tmp/s/0", "/root/.ssh/authorized_keys": "/tmp/my dir/1"}
	got, err := writeScript(edit{Dirs: dirs, Files: files, Remove: []string{"/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_dsa_key"}}, existing, host)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		// /etc exists: no mkdir (debugfs corrupts the filesystem on that).
		"sif /etc mode 040755", "sif /etc uid 0", "sif /etc gid 0",
		"mkdir /root/.ssh",
		"sif /root/.ssh mode 040700", "sif /root/.ssh uid 0", "sif /root/.ssh gid 0",
		"rm /etc/ssh/ssh_host_rsa_key",
		"rm /etc/hostname",
		"write /tmp/s/0 /etc/hostname",
		"sif /etc/hostname mode 0100644", "sif /etc/hostname uid 0", "sif /etc/hostname gid 0",
		`write "/tmp/my dir/1" /root/.ssh/authorized_keys`,
		"sif /root/.ssh/authorized_keys mode 0100600", "sif /root/.ssh/authorized_keys uid 0", "sif /root/.ssh/authorized_keys gid 0",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("script (-want +got):\n%s", diff)
	}

	existing["/root/.ssh"] = inode{Type: "regular"}
	if _, err := writeScript(edit{Dirs: dirs, Files: files}, existing, host); err == nil {
		t.Error("a file where a directory belongs was accepted")
	}
}

func TestCheckWrittenReportsDifferences(t *testing.T) {
	e := edit{Dirs: []guestDir{{Path: "/root/.ssh", Perm: 0o700}}, Files: []guestFile{{Path: "/etc/hostname", Data: []byte("dev\n"), Perm: 0o644}}}
	stat := func(typ string, mode string, uid string) string {
		return "Inode: 13   Type: " + typ + "    Mode:  " + mode + "   Flags: 0x80000\nUser:     " + uid + "   Group:     0   Project:     0   Size: 4\n"
	}
	ok := []string{stat("regular", "0644", "0"), "dev\n", stat("directory", "0700", "0")}
	if err := checkWritten(e, ok); err != nil {
		t.Errorf("matching read-back rejected: %v", err)
	}
	for name, out := range map[string][]string{
		"content":  {stat("regular", "0644", "0"), "old\n", stat("directory", "0700", "0")},
		"mode":     {stat("regular", "0600", "0"), "dev\n", stat("directory", "0700", "0")},
		"owner":    {stat("regular", "0644", "1000"), "dev\n", stat("directory", "0700", "0")},
		"missing":  {"", "", stat("directory", "0700", "0")},
		"dir mode": {stat("regular", "0644", "0"), "dev\n", stat("directory", "0755", "0")},
	} {
		if err := checkWritten(e, out); err == nil {
			t.Errorf("%s difference not reported", name)
		}
	}
}
