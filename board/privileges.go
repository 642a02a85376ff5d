package board

import (
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"tinytor/tor/config"
	"tinytor/tor/torlog"
)

// userError is a failure to switch to the torrc's User: "User <name>:
// <what>: <err>" (what or err may be empty).
type userError struct {
	user, what string
	err        error
}

func (e *userError) Error() string {
	s := "User " + e.user
	if e.what != "" {
		s += ": " + e.what
	}
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}

func (e *userError) Unwrap() error { return e.err }

// dropPrivileges switches to the torrc's User, if any: supplementary
// groups, group and user, for every thread of the process (Go 1.16+).
// The data directories become the user's first, so that state can still
// be written.
func dropPrivileges(cfg *config.Config, log *torlog.Logger) error {
	if cfg.User == "" {
		return nil
	}
	if what, err := switchUser(cfg, log); what != "" || err != nil {
		return &userError{cfg.User, what, err}
	}
	return nil
}

// switchUser does the work of dropPrivileges. On failure it returns the
// step that failed and its error (either may be empty).
func switchUser(cfg *config.Config, log *torlog.Logger) (what string, err error) {
	u, err := user.Lookup(cfg.User)
	if err != nil {
		return "", err
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return "bad uid/gid", err
	}
	if os.Geteuid() == uid && os.Getuid() == uid {
		log.Infof("Already running as User %s.", cfg.User)
		return "", nil
	}
	if os.Geteuid() != 0 {
		return "cannot switch users: tinytor must be started as root for that (running as uid " +
			strconv.Itoa(os.Geteuid()) + "); remove the User line or start it as root", nil
	}
	groups := []int{gid}
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.Atoi(s); err == nil && !slices.Contains(groups, g) {
				groups = append(groups, g)
			}
		}
	}
	for _, d := range []string{cfg.DataDirectory, cfg.CacheDirectory} {
		if err := chownTree(d, uid, gid); err != nil {
			return "giving " + d + " to the user", err
		}
	}
	// syscall.Setgroups, not unix.Setgroups: the latter changes only the
	// calling thread.
	if err := syscall.Setgroups(groups); err != nil {
		return "setgroups", err
	}
	if err := unix.Setgid(gid); err != nil {
		return "setgid(" + strconv.Itoa(gid) + ")", err
	}
	if err := unix.Setuid(uid); err != nil {
		return "setuid(" + strconv.Itoa(uid) + ")", err
	}
	if uid != 0 && unix.Setuid(0) == nil {
		return "could regain root after dropping privileges", nil
	}
	log.Noticef("Switched to User %s (uid %d, gid %d) after opening the listeners.", cfg.User, uid, gid)
	return "", nil
}

// chownTree gives dir and everything in it to uid:gid, without following
// symbolic links.
func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
