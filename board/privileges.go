package board

import (
	"errors"
	"fmt"
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

// dropPrivileges switches to the torrc's User, if any: supplementary
// groups, group and user, for every thread of the process (Go 1.16+).
// The data directories become the user's first, so that state can still
// be written.
func dropPrivileges(cfg *config.Config, log *torlog.Logger) error {
	if cfg.User == "" {
		return nil
	}
	u, err := user.Lookup(cfg.User)
	if err != nil {
		return fmt.Errorf("User %s: %w", cfg.User, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("User %s: bad uid/gid: %w", cfg.User, err)
	}
	if os.Geteuid() == uid && os.Getuid() == uid {
		log.Infof("Already running as User %s.", cfg.User)
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("User %s: cannot switch users: tinytor must be started as root for that (running as uid %d); remove the User line or start it as root", cfg.User, os.Geteuid())
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
			return fmt.Errorf("User %s: giving %s to the user: %w", cfg.User, d, err)
		}
	}
	// syscall.Setgroups, not unix.Setgroups: the latter changes only the
	// calling thread.
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("User %s: setgroups: %w", cfg.User, err)
	}
	if err := unix.Setgid(gid); err != nil {
		return fmt.Errorf("User %s: setgid(%d): %w", cfg.User, gid, err)
	}
	if err := unix.Setuid(uid); err != nil {
		return fmt.Errorf("User %s: setuid(%d): %w", cfg.User, uid, err)
	}
	if uid != 0 && unix.Setuid(0) == nil {
		return fmt.Errorf("User %s: could regain root after dropping privileges", cfg.User)
	}
	log.Noticef("Switched to User %s (uid %d, gid %d) after opening the listeners.", cfg.User, uid, gid)
	return nil
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
