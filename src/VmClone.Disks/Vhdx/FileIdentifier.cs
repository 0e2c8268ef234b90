using System;
using System.Buffers.Binary;
using System.Text;

namespace VmClone.Disks.Vhdx;

/// <summary>
/// The file type identifier at offset 0 ([MS-VHDX] 2.2.1): signature <c>vhdxfile</c> then a
/// 256-character UTF-16LE creator string that is informational only.
/// </summary>
internal sealed class FileIdentifier
{
    /// <summary>Offset 0, 8 bytes: "vhdxfile" (0x656C696678646876 little endian). MUST match.</summary>
    public const int SignatureOffset = 0;
    /// <summary>Offset 8, 512 bytes: Creator, UTF-16LE, NUL padded; MUST NOT be used for anything but display.</summary>
    public const int CreatorOffset = 8;
    public const int CreatorBytes = 512;
    public const int Length = CreatorOffset + CreatorBytes;
    public const ulong Signature = 0x656C696678646876UL;

    public FileIdentifier(string creator)
    {
        Creator = creator;
    }

    public string Creator { get; }

    public static FileIdentifier Parse(ReadOnlySpan<byte> data, string path)
    {
        if (data.Length < Length || BinaryPrimitives.ReadUInt64LittleEndian(data) != Signature)
            throw new DiskFormatException(path, "file type identifier", "the signature is not 'vhdxfile' (MS-VHDX 2.2.1)", VhdxConstants.FileIdentifierOffset);
        string creator = Encoding.Unicode.GetString(data.Slice(CreatorOffset, CreatorBytes).ToArray());
        int nul = creator.IndexOf('\0');
        return new FileIdentifier(nul >= 0 ? creator.Substring(0, nul) : creator);
    }

    public byte[] ToBytes()
    {
        var data = new byte[Length];
        BinaryPrimitives.WriteUInt64LittleEndian(data, Signature);
        byte[] creator = Encoding.Unicode.GetBytes(Creator);
        Array.Copy(creator, 0, data, CreatorOffset, Math.Min(creator.Length, CreatorBytes - 2));
        return data;
    }
}
