using System;
using System.Collections.Generic;

namespace VmClone.Disks.Vhd;

internal sealed partial class VhdLayer
{
    /// <summary>
    /// Re-points a differencing VHD: new locator data in new space at the end (the footer moved
    /// past it), flush, then the dynamic header with the new parent id, name and locators,
    /// flush. Cut off before the header, the file still names its old parent. The header is two
    /// sectors and VHD keeps one copy: a write torn across them leaves a checksum that fails,
    /// refused on open, never a wrong parent.
    /// </summary>
    public override void SetParent(ParentLink link)
    {
        EnsureWritable();
        // Everything written so far is reachable and durable before the link changes.
        CommitBatch();
        if (_footer.DiskType != VhdDiskType.Differencing)
            throw new VirtualDiskException(Path, $"'{Path}' is not a differencing disk; it has no parent to change.");
        if (link.Parent is not VhdLayer)
            throw new DiskChainException(Path, ChainProblem.Incompatible,
                $"A VHD differencing disk can only have a VHD parent; '{link.AbsolutePath}' is {link.Parent.Format}.", link.AbsolutePath);
        DynamicHeader header = DynamicHeader.Parse(_header!.Raw);
        var locatorData = new List<(long Offset, byte[] Data)>();
        long at = RoundUp(_nextFree, 512);
        long end = SetParentFields(header, link.Parent, link.RelativePath, link.AbsolutePath, at, locatorData);
        header.UpdateChecksum();
        foreach ((long offset, byte[] data) in locatorData)
            _file.Write(offset, data);
        _file.Write(end, _footer.Raw);
        _file.Flush();
        _file.Write((long)_footer.DataOffset, header.Raw);
        _file.Flush();
        _header = header;
        _headerProblem = null;
        _nextFree = end;
        _parentReference = LoadParentReference(_file.Length);
    }
}
