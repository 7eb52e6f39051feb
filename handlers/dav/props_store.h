// WebDAV dead properties (RFC 4918 §4): stored next to their resource, so
// they survive restarts and travel with it.
//
// Where: all dead properties of one resource are one blob, written in one
// step, so a PROPPATCH is all or nothing (RFC 4918 §9.2):
//   * by default in the extended attribute "user.uvhttpd.props" of the file
//     or directory (setxattr replaces a value atomically; a rename carries
//     it along; ext4, XFS, btrfs and tmpfs since Linux 6.6 have user.*);
//   * where the file system refuses user extended attributes (ENOTSUP) or
//     the blob is larger than it takes (E2BIG, ENOSPC), or always with
//     --dav-props sidecar, in a sidecar file: for a file NAME in directory
//     D, D/.uvhttpd-props/NAME; for a collection C, C/.uvhttpd-props/.self
//     (so a moved collection carries its own and its members' properties).
//     A sidecar is written to a temporary name and renamed into place. The
//     directory is a dotfile: never served, listed, or writable by clients.
// Every function here blocks: threadpool only. The caller holds the lock
// service's name lock of the resource while it changes properties.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace uvh {

// One dead property: its name and its value, the whole property element
// serialised as self-contained XML (protocol/dav_xml.h xml_serialize), so
// child elements, namespaces and xml:lang come back as they were set.
struct DeadProperty {
    std::string ns;
    std::string name;
    std::string xml;
};

inline constexpr std::string_view kPropsXattr = "user.uvhttpd.props";
inline constexpr std::string_view kPropsDir = ".uvhttpd-props";
inline constexpr std::string_view kPropsSelf = ".self";
// The largest blob accepted (all dead properties of one resource).
inline constexpr size_t kMaxPropsBlob = 1 << 20;

// Where properties go: extended attributes with the sidecar as fallback,
// or the sidecar only (--dav-props sidecar).
enum class PropsMode : uint8_t { Auto, Sidecar };

// A resource as the store sees it: `name` in the directory `dir_fd` (any
// descriptor of the directory, O_PATH included); a collection keeps its
// sidecar inside itself.
struct PropsTarget {
    int dir_fd = -1;
    std::string_view name;
    bool is_dir = false;
};

// Reads every dead property. 0, or an errno (EIO for a damaged blob).
int props_read(PropsMode mode, const PropsTarget& t, std::vector<DeadProperty>& out);
// Replaces every dead property with `props` (empty: removes them). 0 or an
// errno; on failure nothing changed.
int props_write(PropsMode mode, const PropsTarget& t, const std::vector<DeadProperty>& props);
// After a file's rename: moves its sidecar entry along (extended
// attributes travel with the inode; a collection's sidecar is inside it).
int props_moved(const PropsTarget& from, const PropsTarget& to);
// Copies the dead properties of `from` to the new resource `to`.
int props_copy(PropsMode mode, const PropsTarget& from, const PropsTarget& to);
// Removes a deleted file's sidecar entry (nothing to do for attributes).
void props_forget(const PropsTarget& t);

// The blob format, for tests: "UVHP1\n" then per property the three
// lengths in decimal ("ns name xml\n") and the three byte strings.
std::string props_encode(const std::vector<DeadProperty>& props);
bool props_decode(std::string_view blob, std::vector<DeadProperty>& out);

}  // namespace uvh
