using System;
using System.Buffers.Binary;

namespace VmClone.Disks.Vhdx;

/// <summary>The File Parameters metadata item ([MS-VHDX] 2.6.2.1), 8 bytes.</summary>
internal readonly struct FileParameters
{
    public static readonly Guid ItemId = new("CAA16737-FA36-4D43-B3B6-33F0AA44E76B");
    /// <summary>u32 BlockSize: power of two, 1 MiB to 256 MiB.</summary>
    public const int BlockSizeOffset = 0;
    /// <summary>u32 flags: bit 0 LeaveBlockAllocated (fixed disk), bit 1 HasParent (differencing disk).</summary>
    public const int FlagsOffset = 4;
    public const int Length = 8;
    public const uint LeaveBlockAllocatedFlag = 1;
    public const uint HasParentFlag = 2;

    public FileParameters(uint blockSize, bool leaveBlockAllocated, bool hasParent)
    {
        BlockSize = blockSize;
        LeaveBlockAllocated = leaveBlockAllocated;
        HasParent = hasParent;
    }

    public uint BlockSize { get; }
    public bool LeaveBlockAllocated { get; }
    public bool HasParent { get; }

    public static FileParameters Parse(ReadOnlySpan<byte> data, string path, long offset)
    {
        if (data.Length < Length)
            throw new DiskFormatException(path, "file parameters", $"the item is {data.Length} bytes, not {Length} (MS-VHDX 2.6.2.1)", offset);
        uint blockSize = BinaryPrimitives.ReadUInt32LittleEndian(data);
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(data.Slice(FlagsOffset));
        if (!VhdxConstants.IsValidBlockSize(blockSize))
            throw new DiskFormatException(path, "file parameters", $"block size {blockSize} is not a power of two between 1 MiB and 256 MiB (MS-VHDX 2.6.2.1)", offset);
        return new FileParameters(blockSize, (flags & LeaveBlockAllocatedFlag) != 0, (flags & HasParentFlag) != 0);
    }

    public byte[] ToBytes()
    {
        var data = new byte[Length];
        BinaryPrimitives.WriteUInt32LittleEndian(data, BlockSize);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(FlagsOffset), (LeaveBlockAllocated ? LeaveBlockAllocatedFlag : 0) | (HasParent ? HasParentFlag : 0));
        return data;
    }
}
