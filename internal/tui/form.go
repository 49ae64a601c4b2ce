package tui

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"banger/internal/api"
	"banger/internal/vm"
)

// form is a small dialog of text fields.
type form struct {
	title  string
	labels []string
	inputs []field
	focus  int
	err    string
	// submit validates the values and returns the command to run.
	submit func(values []string) (tea.Cmd, error)
}

func (m *Model) newForm(title string, labels, values, placeholders []string, submit func([]string) (tea.Cmd, error)) *form {
	f := &form{title: title, labels: labels, submit: submit}
	for i := range labels {
		in := newField("", 64)
		in.SetValue(values[i])
		in.placeholder = placeholders[i]
		f.inputs = append(f.inputs, in)
	}
	f.inputs[0].Focus()
	return f
}

func (m *Model) createForm() *form {
	d := m.cfg.Defaults
	img := d.Image
	if img == "" && len(m.images) > 0 {
		img = m.images[0].Name
	}
	cpus := ""
	if d.CPUs > 0 {
		cpus = strconv.Itoa(d.CPUs)
	}
	labels := []string{"name", "image", "vCPUs", "memory", "disk"}
	values := []string{"", img, cpus, d.Memory, d.Disk}
	placeholders := []string{"e.g. dev", "default", "default", "e.g. 1G", "e.g. 8G"}
	return m.newForm("New VM", labels, values, placeholders, m.submitCreate)
}

func (m *Model) submitCreate(vals []string) (tea.Cmd, error) {
	req := api.CreateVMRequest{Name: strings.TrimSpace(vals[0]), Image: strings.TrimSpace(vals[1])}
	if err := vm.ValidateName(req.Name); err != nil {
		return nil, err
	}
	if s := strings.TrimSpace(vals[2]); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("invalid vCPUs %q: use a whole number such as 2", s)
		}
		req.CPUs = n
	}
	if s := strings.TrimSpace(vals[3]); s != "" {
		b, err := vm.ParseSize(s)
		if err != nil {
			return nil, fmt.Errorf("memory: %w", err)
		}
		req.MemoryMiB = int(b / vm.MiB)
	}
	if s := strings.TrimSpace(vals[4]); s != "" {
		b, err := vm.ParseSize(s)
		if err != nil {
			return nil, fmt.Errorf("disk: %w", err)
		}
		req.DiskBytes = b
	}
	c := m.cfg.Client
	m.want = req.Name
	return m.runOp(req.Name, "creating", "created", func(ctx context.Context, p func(api.Progress)) (*api.VM, []string, error) {
		v, warnings, err := c.CreateVM(ctx, req, p)
		return &v, warnings, err
	}), nil
}

func (m *Model) resizeForm(v api.VM) *form {
	name := v.Name
	return m.newForm("Grow the work disk of "+name, []string{"disk"}, []string{vm.FormatSize(v.DiskBytes)}, []string{"e.g. 16G"}, func(vals []string) (tea.Cmd, error) {
		b, err := vm.ParseSize(vals[0])
		if err != nil {
			return nil, err
		}
		if b < v.DiskBytes {
			return nil, fmt.Errorf("the disk can only grow: pick at least %s", vm.FormatSize(v.DiskBytes))
		}
		c := m.cfg.Client
		return m.runOp(name, "resizing", "resized", func(ctx context.Context, p func(api.Progress)) (*api.VM, []string, error) {
			v, err := c.ResizeVM(ctx, name, api.ResizeVMRequest{DiskBytes: b}, p)
			return &v, nil, err
		}), nil
	})
}

func (m *Model) formKey(msg tea.KeyMsg) tea.Cmd {
	f := m.form
	focus := func(i int) {
		f.inputs[f.focus].Blur()
		f.focus = (i + len(f.inputs)) % len(f.inputs)
		f.inputs[f.focus].Focus()
	}
	switch msg.Type {
	case tea.KeyEsc:
		m.form = nil
		return nil
	case tea.KeyTab, tea.KeyDown:
		focus(f.focus + 1)
		return nil
	case tea.KeyShiftTab, tea.KeyUp:
		focus(f.focus - 1)
		return nil
	case tea.KeyEnter:
		if f.focus < len(f.inputs)-1 {
			focus(f.focus + 1)
			return nil
		}
		vals := make([]string, len(f.inputs))
		for i, in := range f.inputs {
			vals[i] = in.Value()
		}
		cmd, err := f.submit(vals)
		if err != nil {
			f.err = err.Error()
			return nil
		}
		m.form = nil
		return cmd
	}
	f.inputs[f.focus].update(msg)
	f.err = ""
	return nil
}

// view renders the form as a box of labelled fields.
func (f *form) view(st styles, width int) string {
	var b strings.Builder
	b.WriteString(st.title.Render(f.title) + "\n\n")
	for i := range f.inputs {
		in := &f.inputs[i]
		mark := "  "
		if i == f.focus {
			mark = "▸ "
		}
		b.WriteString(mark + fit(st.label.Render(f.labels[i]), 8) + in.view(st) + "\n")
	}
	b.WriteString("\n")
	if f.err != "" {
		b.WriteString(st.err.Render(clip(f.err, width-6)) + "\n")
	}
	b.WriteString(st.dim.Render("enter next/submit · tab move · esc cancel"))
	return st.box.Render(b.String())
}
