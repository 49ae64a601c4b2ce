package qemuvmm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// The request and response bodies below mirror Firecracker's API (the
// swagger models in firecracker-go-sdk v1.0.0). Required fields are pointers
// so that a missing field can be told apart from a zero value.

// MachineConfig is the body of /machine-config.
type MachineConfig struct {
	VcpuCount       *int64 `json:"vcpu_count"`
	MemSizeMib      *int64 `json:"mem_size_mib"`
	Smt             *bool  `json:"smt,omitempty"`
	CPUTemplate     string `json:"cpu_template,omitempty"`
	TrackDirtyPages bool   `json:"track_dirty_pages,omitempty"`
}

// BootSource is the body of PUT /boot-source.
type BootSource struct {
	KernelImagePath *string `json:"kernel_image_path"`
	InitrdPath      string  `json:"initrd_path,omitempty"`
	BootArgs        string  `json:"boot_args,omitempty"`
}

// RateLimiter is accepted wherever Firecracker accepts one. It is stored
// but not enforced.
type RateLimiter struct {
	Bandwidth *TokenBucket `json:"bandwidth,omitempty"`
	Ops       *TokenBucket `json:"ops,omitempty"`
}

// TokenBucket is one half of a RateLimiter.
type TokenBucket struct {
	OneTimeBurst *int64 `json:"one_time_burst,omitempty"`
	RefillTime   *int64 `json:"refill_time"`
	Size         *int64 `json:"size"`
}

// Drive is the body of PUT /drives/{id}.
type Drive struct {
	DriveID      *string      `json:"drive_id"`
	PathOnHost   *string      `json:"path_on_host"`
	IsRootDevice *bool        `json:"is_root_device"`
	IsReadOnly   *bool        `json:"is_read_only"`
	Partuuid     string       `json:"partuuid,omitempty"`
	CacheType    *string      `json:"cache_type,omitempty"`
	IoEngine     *string      `json:"io_engine,omitempty"`
	RateLimiter  *RateLimiter `json:"rate_limiter,omitempty"`
}

// PartialDrive is the body of PATCH /drives/{id}.
type PartialDrive struct {
	DriveID     *string      `json:"drive_id"`
	PathOnHost  string       `json:"path_on_host,omitempty"`
	RateLimiter *RateLimiter `json:"rate_limiter,omitempty"`
}

// NetworkInterface is the body of PUT /network-interfaces/{id}.
type NetworkInterface struct {
	IfaceID       *string      `json:"iface_id"`
	HostDevName   *string      `json:"host_dev_name"`
	GuestMac      string       `json:"guest_mac,omitempty"`
	RxRateLimiter *RateLimiter `json:"rx_rate_limiter,omitempty"`
	TxRateLimiter *RateLimiter `json:"tx_rate_limiter,omitempty"`
}

// Logger is the body of PUT /logger.
type Logger struct {
	LogPath       *string `json:"log_path"`
	Level         *string `json:"level,omitempty"`
	ShowLevel     *bool   `json:"show_level,omitempty"`
	ShowLogOrigin *bool   `json:"show_log_origin,omitempty"`
}

// Metrics is the body of PUT /metrics.
type Metrics struct {
	MetricsPath *string `json:"metrics_path"`
}

// Vsock is the body of PUT /vsock.
type Vsock struct {
	GuestCid *int64  `json:"guest_cid"`
	UdsPath  *string `json:"uds_path"`
	VsockID  string  `json:"vsock_id,omitempty"`
}

// MmdsConfig is the body of PUT /mmds/config.
type MmdsConfig struct {
	IPv4Address       *string  `json:"ipv4_address,omitempty"`
	NetworkInterfaces []string `json:"network_interfaces"`
	Version           *string  `json:"version,omitempty"`
}

// InstanceActionInfo is the body of PUT /actions.
type InstanceActionInfo struct {
	ActionType *string `json:"action_type"`
}

// VMState is the body of PATCH /vm.
type VMState struct {
	State *string `json:"state"`
}

// InstanceInfo is the response of GET /.
type InstanceInfo struct {
	AppName    string `json:"app_name"`
	ID         string `json:"id"`
	State      string `json:"state"`
	VmmVersion string `json:"vmm_version"`
}

// VersionInfo is the response of GET /version.
type VersionInfo struct {
	FirecrackerVersion string `json:"firecracker_version"`
}

// Fault is Firecracker's error body.
type Fault struct {
	FaultMessage string `json:"fault_message"`
}

// Instance states as reported by GET /.
const (
	StateNotStarted = "Not started"
	StateRunning    = "Running"
	StatePaused     = "Paused"
)

// Action types of PUT /actions.
const (
	ActionInstanceStart  = "InstanceStart"
	ActionSendCtrlAltDel = "SendCtrlAltDel"
	ActionFlushMetrics   = "FlushMetrics"
)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// decodeBody parses a JSON request body strictly, as Firecracker does: an
// empty body, trailing data and unknown fields are errors.
func decodeBody(r io.Reader, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return fmt.Errorf("reading request body: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New("the request body is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("an error occurred when deserializing the json body of a request: %w", err)
	}
	if dec.More() {
		return errors.New("an error occurred when deserializing the json body of a request: trailing data after the JSON object")
	}
	return nil
}

func missing(field string) error {
	return fmt.Errorf("missing field `%s`", field)
}

func (m MachineConfig) validate() error {
	if m.VcpuCount == nil {
		return missing("vcpu_count")
	}
	if m.MemSizeMib == nil {
		return missing("mem_size_mib")
	}
	return m.validateValues()
}

func (m MachineConfig) validateValues() error {
	if m.VcpuCount != nil {
		n := *m.VcpuCount
		if n < 1 || n > 32 {
			return fmt.Errorf("the vCPU number is invalid: %d (it must be between 1 and 32)", n)
		}
		if m.Smt != nil && *m.Smt && n > 1 && n%2 == 1 {
			return fmt.Errorf("the vCPU number is invalid: %d (it must be 1 or an even number when SMT is enabled)", n)
		}
	}
	if m.MemSizeMib != nil && *m.MemSizeMib < 1 {
		return fmt.Errorf("the memory size (MiB) is invalid: %d", *m.MemSizeMib)
	}
	switch m.CPUTemplate {
	case "", "None", "C3", "T2", "T2S", "T2CL", "T2A":
	default:
		return fmt.Errorf("unknown cpu_template %q", m.CPUTemplate)
	}
	return nil
}

// merge applies the fields set in patch over m.
func (m MachineConfig) merge(patch MachineConfig) MachineConfig {
	if patch.VcpuCount != nil {
		m.VcpuCount = patch.VcpuCount
	}
	if patch.MemSizeMib != nil {
		m.MemSizeMib = patch.MemSizeMib
	}
	if patch.Smt != nil {
		m.Smt = patch.Smt
	}
	if patch.CPUTemplate != "" {
		m.CPUTemplate = patch.CPUTemplate
	}
	if patch.TrackDirtyPages {
		m.TrackDirtyPages = true
	}
	return m
}

func (b BootSource) validate() error {
	if b.KernelImagePath == nil || *b.KernelImagePath == "" {
		return missing("kernel_image_path")
	}
	return nil
}

func (d Drive) validate(pathID string) error {
	switch {
	case d.DriveID == nil:
		return missing("drive_id")
	case d.PathOnHost == nil:
		return missing("path_on_host")
	case d.IsRootDevice == nil:
		return missing("is_root_device")
	case d.IsReadOnly == nil:
		return missing("is_read_only")
	}
	if err := checkIDs(pathID, *d.DriveID); err != nil {
		return err
	}
	if d.CacheType != nil && *d.CacheType != "Unsafe" && *d.CacheType != "Writeback" {
		return fmt.Errorf("unknown cache_type %q (want Unsafe or Writeback)", *d.CacheType)
	}
	if d.IoEngine != nil && *d.IoEngine != "Sync" && *d.IoEngine != "Async" {
		return fmt.Errorf("unknown io_engine %q (want Sync or Async)", *d.IoEngine)
	}
	return nil
}

func (n NetworkInterface) validate(pathID string) error {
	switch {
	case n.IfaceID == nil:
		return missing("iface_id")
	case n.HostDevName == nil || *n.HostDevName == "":
		return missing("host_dev_name")
	}
	if err := checkIDs(pathID, *n.IfaceID); err != nil {
		return err
	}
	if n.GuestMac != "" && !macPattern.MatchString(n.GuestMac) {
		return fmt.Errorf("invalid guest_mac %q", n.GuestMac)
	}
	if strings.ContainsAny(*n.HostDevName, ",= /") || len(*n.HostDevName) > 15 {
		return fmt.Errorf("invalid host_dev_name %q", *n.HostDevName)
	}
	return nil
}

var macPattern = regexp.MustCompile(`^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$`)

func checkIDs(pathID, bodyID string) error {
	if !idPattern.MatchString(pathID) {
		return fmt.Errorf("invalid id %q: use 1 to 64 letters, digits or underscores", pathID)
	}
	if pathID != bodyID {
		return fmt.Errorf("the id from the path [%s] does not match the id from the body [%s]", pathID, bodyID)
	}
	return nil
}

func (l Logger) validate() error {
	if l.LogPath == nil || *l.LogPath == "" {
		return missing("log_path")
	}
	if l.Level != nil {
		if _, err := parseLevel(*l.Level); err != nil {
			return err
		}
	}
	return nil
}

func (v Vsock) validate() error {
	switch {
	case v.GuestCid == nil:
		return missing("guest_cid")
	case v.UdsPath == nil || *v.UdsPath == "":
		return missing("uds_path")
	case *v.GuestCid < 3:
		return fmt.Errorf("invalid guest_cid %d: it must be at least 3", *v.GuestCid)
	}
	return nil
}

func (c MmdsConfig) validate(ifaces map[string]bool) error {
	if c.NetworkInterfaces == nil {
		return missing("network_interfaces")
	}
	for _, id := range c.NetworkInterfaces {
		if !ifaces[id] {
			return fmt.Errorf("the list of network interface IDs provided contains at least one ID (%s) that does not correspond to any existing network interface", id)
		}
	}
	if c.Version != nil && *c.Version != "V1" && *c.Version != "V2" {
		return fmt.Errorf("unknown MMDS version %q (want V1 or V2)", *c.Version)
	}
	return nil
}
