namespace VmClone.Disks.Vhdx;

/// <summary>Payload block states ([MS-VHDX] 2.5.1.1); sector bitmap entries use 0 and 6 only (2.5.1.2).</summary>
internal enum BatState
{
    /// <summary>PAYLOAD_BLOCK_NOT_PRESENT / SB_BLOCK_NOT_PRESENT: no storage; differencing disks read the parent.</summary>
    NotPresent = 0,
    /// <summary>PAYLOAD_BLOCK_UNDEFINED: contents undefined; read as zeros.</summary>
    Undefined = 1,
    /// <summary>PAYLOAD_BLOCK_ZERO: zeros, hiding any parent.</summary>
    Zero = 2,
    /// <summary>PAYLOAD_BLOCK_UNMAPPED (trimmed): read as zeros; the file offset must not be trusted.</summary>
    Unmapped = 3,
    /// <summary>PAYLOAD_BLOCK_UNMAPPED in the 0.95 draft, still found in files from early qemu: read as zeros.</summary>
    UnmappedV095 = 5,
    /// <summary>PAYLOAD_BLOCK_FULLY_PRESENT / SB_BLOCK_PRESENT: the whole block is at FileOffsetMB.</summary>
    FullyPresent = 6,
    /// <summary>PAYLOAD_BLOCK_PARTIALLY_PRESENT: differencing only, per-sector bitmap says file or parent.</summary>
    PartiallyPresent = 7,
}

/// <summary>
/// One 64-bit BAT entry ([MS-VHDX] 2.5.1): bits 0–2 State, bits 3–19 reserved (must be zero),
/// bits 20–63 FileOffsetMB, the block's file offset in 1 MiB units.
/// </summary>
internal readonly struct BatEntry
{
    public const int Size = 8;
    private const ulong StateMask = 0x7;
    private const ulong ReservedMask = 0xFFFF8; // bits 3..19
    private const int FileOffsetShift = 20;

    public BatEntry(ulong raw)
    {
        Raw = raw;
    }

    public BatEntry(BatState state, long fileOffset)
    {
        Raw = (ulong)state | ((ulong)(fileOffset / VhdxConstants.MiB) << FileOffsetShift);
    }

    public ulong Raw { get; }

    public BatState State => (BatState)(Raw & StateMask);

    public int RawState => (int)(Raw & StateMask);

    public bool HasReservedBits => (Raw & ReservedMask) != 0;

    /// <summary>File offset in bytes (FileOffsetMB × 1 MiB); at most 2^64 − 1 MiB, so kept below long overflow by the shift.</summary>
    public long FileOffset => (long)(Raw >> FileOffsetShift) * VhdxConstants.MiB;

    /// <summary>False when FileOffsetMB × 1 MiB does not fit a signed 64-bit offset.</summary>
    public bool FileOffsetRepresentable => (Raw >> FileOffsetShift) <= (ulong)(long.MaxValue / VhdxConstants.MiB);

    /// <summary>True for the payload states the spec defines (4 is undefined; 5 is the 0.95 draft's unmapped).</summary>
    public bool IsKnownPayloadState => RawState != 4;

    public override string ToString() => $"{State} @ {FileOffset}";
}
