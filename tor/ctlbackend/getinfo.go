package ctlbackend

import (
	"encoding/hex"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"tinytor/tor/config"
	"tinytor/tor/control"
	"tinytor/tor/event"
	"tinytor/tor/guard"
)

// infoKey is one GETINFO key the backend answers: its info/names entry and
// the function computing its value. A key ending in "*" matches every key
// with that prefix. get receives the key as asked.
type infoKey struct {
	key, doc string
	get      func(b *Backend, key string) (string, error)
}

// infoKeys are the GETINFO keys, in the order info/names lists them. A nil
// get marks a key the control server answers itself (events/names) or one
// answered before the table is consulted (info/names).
var infoKeys = []infoKey{
	{"address-mappings/all", "Current address mappings.", addressMappingsInfo},
	{"address-mappings/cache", "Current cached DNS replies.", addressMappingsInfo},
	{"address-mappings/config", "Current address mappings from configuration.", addressMappingsInfo},
	{"address-mappings/control", "Current address mappings from controller.", addressMappingsInfo},
	{"circuit-status", "List of current circuits originating here.", circuitStatus},
	{"config-defaults-file", "Current location of the defaults file.", configDefaultsFile},
	{"config-file", "Current location of the \"torrc\" file.", configFile},
	{"config-text", "Return the string that would be written by a saveconf command.", configTextInfo},
	{"config/names", "List of configuration options, types, and documentation.", configNames},
	{"dormant", "Is Tor dormant (not building circuits because it's idle)?", dormantInfo},
	{"downloads/bridge/*", "Download statuses for bridge descriptors by identity digest.", bridgeDownloadInfo},
	{"downloads/bridge/bridges", "Return hex-encoded list of bridge identity digests.", bridgeIDs},
	{"entry-guards", "Which nodes are we using as entry guards?", entryGuards},
	{"events/names", "Events that the controller can ask for with SETEVENTS.", nil},
	{"info/names", "List of GETINFO options, types, and documentation.", nil},
	{"md/id/*", "Microdescriptors by ID", microdescInfo},
	{"net/listeners/control", "Addresses of the control listeners.", listenersInfo},
	{"net/listeners/httptunnel", "Addresses of the HTTP tunnel listeners.", listenersInfo},
	{"net/listeners/metrics", "Addresses of the metrics listeners.", listenersInfo},
	{"net/listeners/socks", "Addresses of the SOCKS listeners.", listenersInfo},
	{"net/listeners/trans", "Addresses of the transparent proxy listeners.", listenersInfo},
	{"ns/all", "Brief summary of router status (v3 directory format)", networkStatusAll},
	{"ns/id/*", "Brief summary of router status by ID (v3 directory format).", networkStatusInfo},
	{"onions/current", "Onion services owned by the current control connection.", onionIDsInfo},
	{"onions/detached", "Onion services detached from the control connection.", onionIDsInfo},
	{"orconn-status", "A list of current OR connections.", orconnStatus},
	{"process/pid", "Process id belonging to the main tor process.", processPID},
	{"process/uid", "User id running the tor process.", processUID},
	{"process/user", "Username under which the tor process is running.", processUser},
	{"status/bootstrap-phase", "The last bootstrap phase status event that Tor sent.", bootstrapInfo},
	{"status/circuit-established", "Whether we think client functionality is working.", bootstrapInfo},
	{"status/enough-dir-info", "Whether we have enough up-to-date directory information to build circuits.", bootstrapInfo},
	{"stream-status", "List of current streams.", streamStatus},
	{"traffic/read", "Bytes read since the process was started.", trafficInfo},
	{"traffic/written", "Bytes written since the process was started.", trafficInfo},
	{"uptime", "Uptime of the Tor daemon in seconds.", uptimeInfo},
	{"version", "The current version of Tor.", versionInfo},
}

// GetInfo implements control.Backend.
func (b *Backend) GetInfo(key string) (string, error) {
	if key == "info/names" {
		return lines(len(infoKeys), func(i int) string { return infoKeys[i].key + " -- " + infoKeys[i].doc }), nil
	}
	var get func(*Backend, string) (string, error)
	for _, k := range infoKeys {
		if k.key == key {
			get = k.get
			break
		}
		if p, ok := strings.CutSuffix(k.key, "*"); ok && strings.HasPrefix(key, p) {
			get = k.get // an exact key later in the table wins
		}
	}
	if get == nil {
		return "", control.ErrNotFound
	}
	return get(b, key)
}

// lines joins n lines made by line, one a line.
func lines(n int, line func(i int) string) string {
	var sb strings.Builder
	for i := range n {
		if i > 0 {
			sb.WriteByte('\n')
		}
		sb.WriteString(line(i))
	}
	return sb.String()
}

func versionInfo(b *Backend, _ string) (string, error) { return b.cfg.Version, nil }

func configFile(b *Backend, _ string) (string, error) { return b.cfg.Sources.TorrcPath(), nil }

func configDefaultsFile(b *Backend, _ string) (string, error) {
	if b.cfg.Sources.Defaults != "" {
		return b.cfg.Sources.Defaults, nil
	}
	return config.DefaultDefaultsTorrc, nil
}

func configTextInfo(b *Backend, _ string) (string, error) { return b.configText() }

func configNames(*Backend, string) (string, error) {
	opts := config.Options()
	return lines(len(opts), func(i int) string {
		if opts[i].List {
			return opts[i].Name + " LineList"
		}
		return opts[i].Name + " String"
	}), nil
}

// bootstrapInfo answers the status/* keys from the bootstrap status.
func bootstrapInfo(b *Backend, key string) (string, error) {
	s := b.cfg.Client.Status()
	switch key {
	case "status/circuit-established":
		return boolString(s.Phase.Percent >= 100), nil
	case "status/enough-dir-info":
		return boolString(s.Phase.Percent >= event.PhaseEnoughDirInfo.Percent), nil
	}
	return bootstrapPhase(s), nil
}

func circuitStatus(b *Backend, _ string) (string, error) {
	cs := b.cfg.Client.Circuits()
	return lines(len(cs), func(i int) string { return circEvent(&cs[i]).Event().Body }), nil
}

func streamStatus(b *Backend, _ string) (string, error) {
	ss := b.cfg.Client.Streams()
	return lines(len(ss), func(i int) string {
		s := &ss[i]
		return strconv.FormatUint(s.ID, 10) + " " + s.Status + " " + strconv.FormatUint(s.CircID, 10) + " " + s.Target
	}), nil
}

func orconnStatus(b *Backend, _ string) (string, error) {
	chs := b.cfg.Client.Channels()
	return lines(len(chs), func(i int) string { return channelTarget(&chs[i]) + " " + chs[i].Status }), nil
}

func entryGuards(b *Backend, _ string) (string, error) {
	gs := b.cfg.Client.Guards()
	return lines(len(gs), func(i int) string {
		g := &gs[i]
		status := "up"
		switch {
		case g.Reachable == guard.No:
			status = "down " + g.FailingSince.UTC().Format(time.DateTime)
		case g.ConfirmedIdx < 0:
			status = "never-connected"
		case !g.Listed:
			status = "unlisted"
		}
		return event.RelayRef{ID: g.ID, Nickname: g.Nickname}.LongName() + " " + status
	}), nil
}

// errNoBridges answers the bridge download keys when no bridges are used.
var errNoBridges = &control.Error{Code: control.CodeInternal, Msg: "We're not using bridges"}

func bridgeIDs(b *Backend, _ string) (string, error) {
	bs := b.cfg.Client.Bridges()
	if bs == nil {
		return "", errNoBridges
	}
	var ids []string
	for _, br := range bs {
		if br.Identity != ([20]byte{}) {
			ids = append(ids, strings.ToUpper(hex.EncodeToString(br.Identity[:])))
		}
	}
	return strings.Join(ids, "\n"), nil
}

func bridgeDownloadInfo(b *Backend, key string) (string, error) {
	return bridgeDownload(b.cfg.Client.Bridges(), strings.TrimPrefix(key, "downloads/bridge/"))
}

func trafficInfo(b *Backend, key string) (string, error) {
	r, w := b.cfg.Client.Traffic()
	if key == "traffic/written" {
		r = w
	}
	return strconv.FormatUint(r, 10), nil
}

func onionIDsInfo(b *Backend, key string) (string, error) {
	return b.onionIDs(key == "onions/detached"), nil
}

func processPID(*Backend, string) (string, error) { return strconv.Itoa(os.Getpid()), nil }

func processUID(*Backend, string) (string, error) { return strconv.Itoa(os.Getuid()), nil }

func processUser(*Backend, string) (string, error) {
	u, err := user.Current()
	if err != nil {
		return "", nil
	}
	return u.Username, nil
}

func uptimeInfo(b *Backend, _ string) (string, error) {
	return strconv.FormatInt(int64(b.cfg.Now().Sub(b.start)/time.Second), 10), nil
}

func dormantInfo(b *Backend, _ string) (string, error) {
	b.nymMu.Lock()
	d := b.dormant
	b.nymMu.Unlock()
	return boolString(d), nil
}

func listenersInfo(b *Backend, key string) (string, error) {
	var addrs []string
	if b.cfg.Listeners != nil {
		for _, a := range b.cfg.Listeners(strings.TrimPrefix(key, "net/listeners/")) {
			addrs = append(addrs, control.QuoteString(a))
		}
	}
	return strings.Join(addrs, " "), nil
}

func addressMappingsInfo(b *Backend, key string) (string, error) {
	return b.addressMappings(strings.TrimPrefix(key, "address-mappings/"))
}

func networkStatusInfo(b *Backend, key string) (string, error) {
	ns, _, err := b.relay(strings.TrimPrefix(key, "ns/id/"))
	return ns, err
}

func microdescInfo(b *Backend, key string) (string, error) {
	fp := strings.TrimPrefix(key, "md/id/")
	_, md, err := b.relay(fp)
	if err == nil && md == "" {
		return "", &control.Error{Code: control.CodeInternal, Msg: "Microdescriptor for " + fp + " is not in the cache"}
	}
	return md, err
}
