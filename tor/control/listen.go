package control

import (
	"errors"
	"net"
	"os"
	"path/filepath"

	"tinytor/tor/errfmt"
	"tinytor/tor/netlisten"
	"tinytor/tor/torlog"
)

// Listen opens a control listener: TCP at address for network "tcp", or
// a Unix socket at path address for "unix". A Unix socket's directory is
// made (mode 0700) if missing, a stale socket is replaced, and the socket
// gets mode (0600 for its owner only, 0660 for C tor's GroupWritable,
// 0666 for WorldWritable).
func Listen(network, address string, mode os.FileMode) (net.Listener, error) {
	if network != "unix" {
		return netlisten.Listen(network, address)
	}
	if err := os.MkdirAll(filepath.Dir(address), 0o700); err != nil {
		return nil, err
	}
	if err := os.Remove(address); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l, err := netlisten.Listen("unix", address)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(address, mode); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// ListenerAddr names l as GETINFO net/listeners/control does: "unix:PATH"
// for a Unix socket, host:port otherwise.
func ListenerAddr(l net.Listener) string {
	if l.Addr().Network() == "unix" {
		return "unix:" + l.Addr().String()
	}
	return l.Addr().String()
}

// UseCookieFile turns on COOKIE and SAFECOOKIE authentication with a
// fresh cookie written at path (made absolute, as PROTOCOLINFO announces
// it). With groupReadable the file's group may read it too (mode 0640);
// failing to set that is only logged, as C tor does.
func (a *AuthConfig) UseCookieFile(path string, groupReadable bool, log *torlog.Logger) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return errfmt.Errorf("cookie file %s: %w", path, err)
	}
	cookie, err := NewCookie(abs, nil)
	if err != nil {
		return err
	}
	if groupReadable {
		if err := os.Chmod(abs, 0o640); err != nil {
			log.Warnf("Unable to make %s group-readable: %v", abs, err)
		}
	}
	a.Cookie, a.CookieFile = cookie, abs
	return nil
}
