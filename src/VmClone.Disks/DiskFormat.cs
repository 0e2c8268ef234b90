namespace VmClone.Disks;

/// <summary>The file format of one disk file (one layer of a chain).</summary>
// ConvertTo-Json (Newtonsoft in PowerShell) writes the name, not the number, without -EnumsAsStrings.
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum DiskFormat
{
    /// <summary>Microsoft VHDX (MS-VHDX v1).</summary>
    Vhdx,
    /// <summary>VMware VMDK (hosted sparse extents and the descriptor-based create types).</summary>
    Vmdk,
    /// <summary>A flat file holding the virtual content byte for byte.</summary>
    Raw,
    /// <summary>QEMU copy-on-write version 2 and 3 (qcow2, compat 0.10 and 1.1).</summary>
    Qcow2,
}

/// <summary>How a disk file stores its content.</summary>
// ConvertTo-Json (Newtonsoft in PowerShell) writes the name, not the number, without -EnumsAsStrings.
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum DiskType
{
    /// <summary>Blocks are allocated on first write; unallocated blocks read as zeros.</summary>
    Dynamic,
    /// <summary>Every block is allocated up front (VHDX fixed, VMDK flat, raw).</summary>
    Fixed,
    /// <summary>Unallocated blocks read from a parent disk.</summary>
    Differencing,
}
