package ctlbackend

import (
	"errors"
	"os"
	"slices"
	"strings"

	"tinytor/tor/config"
	"tinytor/tor/control"
	"tinytor/tor/errfmt"
)

// ctlFile is the File of lines set from the control port.
const ctlFile = "control port"

// fixedOptions cannot change while tinytor runs: the listeners and
// credentials of the control and metrics ports are opened once, and the
// directories and user are fixed at start (as in C tor). SETCONF refuses
// to change them with 553.
var fixedOptions = []string{
	"DataDirectory", "CacheDirectory", "User", "PidFile", "RunAsDaemon",
	"ControlPort", "ControlSocket", "CookieAuthentication", "CookieAuthFile",
	"CookieAuthFileGroupReadable", "HashedControlPassword", "MetricsPort", "MetricsPortPolicy",
	"HiddenServiceDir", "HiddenServicePort", "HiddenServiceVersion",
	"HiddenServiceNumIntroductionPoints", "HiddenServiceMaxStreams",
	"HiddenServiceMaxStreamsCloseCircuit", "HiddenServiceDirGroupReadable",
}

// Fixed replies of the configuration commands.
var (
	errNoApply   = &control.Error{Code: control.CodeInvalidConfig, Msg: "Transition not allowed: this control port cannot change the configuration"}
	errWriteConf = &control.Error{Code: control.CodeInternal, Msg: "Unable to write configuration to disk."}
)

// state returns the layers describing the configuration in force,
// rereading the files if the client's configuration was replaced by a
// reload since. The caller holds confMu.
func (b *Backend) state() ([][]config.Line, error) {
	if cur := b.cfg.Client.Config(); cur != b.built {
		layers, err := config.ReadLayers(b.cfg.Sources)
		if err != nil {
			return nil, errfmt.Errorf("rereading the configuration: %w", err)
		}
		b.layers, b.ctl, b.built = layers, nil, cur
	}
	return append(slices.Clone(b.layers), b.ctl), nil
}

// GetConf implements control.Backend.
func (b *Backend) GetConf(keys []string) ([]control.ConfEntry, error) {
	b.confMu.Lock()
	defer b.confMu.Unlock()
	layers, err := b.state()
	if err != nil {
		return nil, err
	}
	var out []control.ConfEntry
	for _, k := range keys {
		name, vals, err := config.Values(b.cfg.Sources.Env, k, layers...)
		if config.IsUnknownOption(err) {
			return nil, control.ErrorWith(control.CodeUnrecognizedEntity, "Unrecognized configuration key", k)
		}
		if err != nil {
			return nil, err
		}
		if len(vals) == 0 {
			out = append(out, control.ConfEntry{Key: name})
		}
		for _, v := range vals {
			out = append(out, control.ConfEntry{Key: name, Value: v, HasValue: true})
		}
	}
	return out, nil
}

// SetConf implements control.Backend.
func (b *Backend) SetConf(entries []control.ConfEntry) error { return b.setConf(entries) }

// ResetConf implements control.Backend. An option given a value is reset
// and then set to it, which is what SETCONF does too.
func (b *Backend) ResetConf(entries []control.ConfEntry) error { return b.setConf(entries) }

// setConf replaces the named options by the given values (or their
// defaults, for entries without a value), builds the new configuration
// and makes it live.
func (b *Backend) setConf(entries []control.ConfEntry) error {
	b.confMu.Lock()
	defer b.confMu.Unlock()
	if b.cfg.Apply == nil {
		return errNoApply
	}
	layers, err := b.state()
	if err != nil {
		return err
	}
	// Lines for the options named, in order; a later mention of an option
	// in the same command adds values (SETCONF A=1 A=2 sets two lines).
	touched := map[string]bool{}
	ctl := slices.Clone(b.ctl)
	for _, e := range entries {
		o, err := config.Option(e.Key)
		if err != nil {
			reason := "Unknown option"
			if errors.Is(err, config.ErrRelayOption) {
				reason = "tinytor is a Tor client only and does not support relay option"
			}
			return &control.Error{Code: control.CodeUnrecognizedEntity, Msg: "Unrecognized option: " + reason + " '" + e.Key + "'.  Failing."}
		}
		if !touched[o.Name] {
			touched[o.Name] = true
			ctl = slices.DeleteFunc(ctl, func(l config.Line) bool { return strings.EqualFold(l.Key, o.Name) })
			ctl = append(ctl, config.Line{Key: o.Name, Command: config.Clear, File: ctlFile})
		}
		if e.HasValue && e.Value != "" {
			ctl = append(ctl, config.Line{Key: o.Name, Value: e.Value, File: ctlFile})
		}
	}
	newLayers := append(slices.Clone(layers[:len(layers)-1]), ctl)
	nc, err := config.Build(b.cfg.Sources.Env, newLayers...)
	if err != nil {
		return control.WrapError(control.CodeUnrecognizedArg, "Unacceptable option value: ", err)
	}
	for _, name := range fixedOptions {
		if !touched[name] {
			continue
		}
		_, before, err1 := config.Values(b.cfg.Sources.Env, name, layers...)
		_, after, err2 := config.Values(b.cfg.Sources.Env, name, newLayers...)
		if err1 != nil || err2 != nil || !slices.Equal(before, after) {
			return &control.Error{Code: control.CodeInvalidConfig, Msg: "Transition not allowed: While tinytor is running, changing " + name + " is not allowed."}
		}
	}
	for _, w := range nc.Warnings {
		b.log.Warnf("%s", w)
	}
	if err := b.cfg.Apply(nc); err != nil {
		return control.WrapError(control.CodeInvalidConfig, "Unable to set option: ", err)
	}
	b.ctl, b.built = ctl, nc
	return nil
}

// savedText is the torrc SAVECONF writes: the torrc's options with the
// control port's changes applied.
func (b *Backend) savedText(layers [][]config.Line) (string, error) {
	// layers are defaults, torrc, command line, control port: the
	// defaults file and the command line are not part of the torrc.
	lines, err := config.Dump(layers[1], layers[len(layers)-1])
	if err != nil {
		return "", err
	}
	return config.FormatLines(lines), nil
}

// configText answers GETINFO config-text.
func (b *Backend) configText() (string, error) {
	b.confMu.Lock()
	defer b.confMu.Unlock()
	layers, err := b.state()
	if err != nil {
		return "", err
	}
	t, err := b.savedText(layers)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(t, "\n"), nil
}

// SaveConf implements control.Backend: it writes the torrc with the
// control port's changes, atomically. A torrc that uses %include is
// overwritten only with FORCE.
func (b *Backend) SaveConf(force bool) error {
	b.confMu.Lock()
	defer b.confMu.Unlock()
	layers, err := b.state()
	if err != nil {
		return err
	}
	path := b.cfg.Sources.TorrcPath()
	if !force {
		for _, l := range layers[1] {
			if l.File != path {
				return &control.Error{Code: control.CodeInternal, Msg: "Unable to write configuration to disk: " + path + " uses %include (SAVECONF FORCE overwrites it)"}
			}
		}
	}
	text, err := b.savedText(layers)
	if err != nil {
		return err
	}
	perm := os.FileMode(0o600)
	if fi, err := os.Stat(path); err == nil {
		perm = fi.Mode().Perm()
	}
	data := "# This file was generated by tinytor; if you edit it, comments will not be preserved\n" + text
	if err := b.cfg.Write(path, []byte(data), perm); err != nil {
		b.log.Warnf("Unable to write configuration to %s: %v", path, err)
		return errWriteConf
	}
	b.log.Noticef("Configuration saved to %s", path)
	// The torrc now holds the control port's changes.
	nl, err := config.ReadLayers(b.cfg.Sources)
	if err == nil {
		b.layers, b.ctl = nl, nil
	}
	return nil
}
