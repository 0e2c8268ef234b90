using System;
using System.Collections.Generic;

namespace VmClone.Disks.Vhdx;

internal sealed partial class VhdxLayer
{
    /// <summary>
    /// Re-points this differencing disk (MS-VHDX 2.6.2.6): a new parent locator with the new
    /// parent's DataWriteGuid as parent_linkage, its relative and absolute paths.
    /// </summary>
    /// <remarks>
    /// Crash safety without the log: the new locator is written into a free gap of the metadata
    /// region (never over the current one) and flushed; only then is the locator's 32-byte table
    /// entry, which lies inside one sector, rewritten to point at it. A crash before that entry
    /// write leaves the old locator in force; after it, the new one. The content is unchanged, so
    /// the DataWriteGuid stays (this disk's own children remain valid); the FileWriteGuid changes
    /// as for any modification.
    /// </remarks>
    public override void SetParent(ParentLink link)
    {
        EnsureWritable();
        // Everything written so far is reachable and durable before the link changes.
        CommitBatch();
        if (!_parameters.HasParent)
            throw new VirtualDiskException(Path, $"'{Path}' is not a differencing disk; it has no parent to change.");
        if (link.Parent is not VhdxLayer)
            throw new DiskChainException(Path, ChainProblem.Incompatible,
                $"A VHDX differencing disk can only have a VHDX parent; '{link.AbsolutePath}' is {link.Parent.Format}.", link.AbsolutePath);

        var entries = new List<KeyValuePair<string, string>> { new(ParentLocator.ParentLinkageKey, link.Parent.Identity) };
        if (link.RelativePath is string rel)
        {
            string win = PathUtil.ToWindowsSeparators(rel);
            if (!win.StartsWith("..\\", StringComparison.Ordinal) && !win.StartsWith(".\\", StringComparison.Ordinal))
                win = ".\\" + win;
            entries.Add(new(ParentLocator.RelativePathKey, win));
        }
        entries.Add(new(ParentLocator.AbsoluteWin32PathKey, link.AbsolutePath));
        var locator = new ParentLocator(ParentLocator.VhdxLocatorType, entries);
        byte[] data = locator.ToBytes();

        RegionTableEntry region = _regions.Metadata;
        MetadataTable table = MetadataTable.Parse(_view.ReadBytes(region.FileOffset, MetadataTable.Length, "metadata table"), Path, region.FileOffset, region.Length, KnownItems);
        int index = -1;
        for (int i = 0; i < table.Entries.Count; i++)
        {
            if (table.Entries[i].ItemId == ParentLocator.ItemId)
                index = i;
        }
        if (index < 0)
            throw new DiskFormatException(Path, "metadata table", "the parent locator item is missing (MS-VHDX 2.6.2.6)", region.FileOffset);
        long gap = FindMetadataGap(table, region.Length, data.Length);

        if (!_fileWriteGuidChanged)
        {
            UpdateHeader(h => h.FileWriteGuid = Guid.NewGuid());
            _fileWriteGuidChanged = true;
        }
        _view.Write(region.FileOffset + gap, data);
        _view.Flush();

        MetadataTableEntry old = table.Entries[index];
        var updated = new List<MetadataTableEntry>(table.Entries);
        updated[index] = new MetadataTableEntry(old.ItemId, (uint)gap, (uint)data.Length, old.Flags);
        byte[] tableBytes = new MetadataTable(updated).ToBytes();
        int entryAt = MetadataTable.EntriesOffset + index * MetadataTableEntry.Size;
        _view.Write(region.FileOffset + entryAt, tableBytes.AsSpan(entryAt, MetadataTableEntry.Size).ToArray());
        _view.Flush();

        _locator = locator;
        _parentReference = locator.ToParentReference(Path, region.FileOffset + gap);
    }

    /// <summary>The first 8-byte-aligned offset after the table where <paramref name="length"/> bytes overlap no item.</summary>
    private long FindMetadataGap(MetadataTable table, long regionLength, int length)
    {
        var used = new List<(long Start, long End)>();
        foreach (MetadataTableEntry e in table.Entries)
        {
            if (e.Length > 0)
                used.Add((e.Offset, e.Offset + (long)e.Length));
        }
        used.Sort((a, b) => a.Start.CompareTo(b.Start));
        long candidate = MetadataTable.Length;
        foreach (var (start, end) in used)
        {
            if (candidate + length <= start)
                break;
            if (end > candidate)
                candidate = VhdxConstants.RoundUp(end, 8);
        }
        if (candidate + length > regionLength)
            throw new VirtualDiskException(Path, $"'{Path}' has no room left in its metadata region for a new parent locator.");
        return candidate;
    }
}
