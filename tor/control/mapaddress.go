package control

import "errors"

// MapAddressEntry is one "Old=New" argument of MAPADDRESS (control-spec
// 3.8): map the address Old to New. Old may be "." , "0.0.0.0" or "::"
// to ask for an unused virtual address of that kind.
type MapAddressEntry struct{ From, To string }

// ParseMapAddress parses the arguments of MAPADDRESS as C tor's
// mapaddress_syntax: keywords only (values may be quoted), at least one.
func ParseMapAddress(args string) ([]MapAddressEntry, error) {
	as, err := ParseArgs(args)
	if err != nil {
		return nil, err
	}
	if len(as) == 0 {
		return nil, errors.New("not enough arguments to mapaddress.")
	}
	out := make([]MapAddressEntry, 0, len(as))
	for _, a := range as {
		if !a.HasKey {
			return nil, errors.New("Too many arguments to MAPADDRESS")
		}
		out = append(out, MapAddressEntry{From: a.Key, To: a.Value})
	}
	return out, nil
}

// mapAddress answers MAPADDRESS: one reply line per mapping, "250-Old=New"
// (New being the virtual address chosen for ".", "0.0.0.0" or "::") or
// the error the Backend gave for it, as C tor's handle_control_mapaddress.
func (c *conn) mapAddress(cmd *Command) *Error {
	entries, err := ParseMapAddress(cmd.Args)
	if err != nil {
		return WrapError(CodeSyntaxArgs, "syntax error: ", err)
	}
	lines := make([]*Error, 0, len(entries))
	for _, e := range entries {
		from, err := c.s.cfg.Backend.MapAddress(e.From, e.To)
		if err != nil {
			lines = append(lines, asError(err, "syntax error: invalid address mapping"))
			continue
		}
		lines = append(lines, &Error{Code: CodeOK, Msg: from + "=" + e.To})
	}
	c.reply(func(w *ReplyWriter) {
		for i, l := range lines {
			if i == len(lines)-1 {
				w.End(l.Code, l.Msg)
			} else {
				w.Mid(l.Code, l.Msg)
			}
		}
	})
	return nil
}
