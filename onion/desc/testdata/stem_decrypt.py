# Decrypts a descriptor with stem (an independent implementation) and
# prints what it found, one fact a line, for build_stem_test.go.
import sys
from stem.descriptor.hidden_service import HiddenServiceDescriptorV3

path, address = sys.argv[1], sys.argv[2]
with open(path) as f:
    desc = HiddenServiceDescriptorV3.from_str(f.read(), validate=True)
print("revision", desc.revision_counter)
print("lifetime", desc.lifetime)
inner = desc.decrypt(address)
print("formats", " ".join(str(f) for f in inner.formats))
for ip in inner.introduction_points:
    print("ip", ip.onion_key_raw, ip.enc_key_raw, len(ip.link_specifiers))
