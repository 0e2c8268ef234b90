using System;
using System.Collections.Generic;
using System.IO;
using System.Management.Automation;
using System.Threading;
using VmClone.Disks;
using VmClone.Core.Store;

namespace VmClone.PowerShell;

/// <summary>
/// Base of every VmClone cmdlet: cancellation on Ctrl+C (StopProcessing), one mapping from our
/// exceptions to error records with a stable id, a category and the input as target, path
/// resolution, and progress records that are always completed.
/// </summary>
public abstract class VmCloneCmdlet : PSCmdlet
{
    private readonly CancellationTokenSource _cancellation = new();

    /// <summary>Cancelled when the user presses Ctrl+C or the pipeline stops.</summary>
    protected CancellationToken CancellationToken => _cancellation.Token;

    protected override void StopProcessing() => _cancellation.Cancel();

    protected override void EndProcessing() => _cancellation.Dispose();

    /// <summary>
    /// Runs one unit of work for one input; a failure becomes a non-terminating error for that
    /// input, so the rest of the pipeline goes on (PowerShell convention).
    /// </summary>
    protected void Try(object target, Action action)
    {
        try
        {
            action();
        }
        catch (Exception ex) when (IsExpected(ex))
        {
            WriteError(ToErrorRecord(ex, target));
        }
    }

    /// <summary>Exceptions that are the user's input or environment, not a defect of ours.</summary>
    protected internal static bool IsExpected(Exception ex) =>
        ex is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException or NotSupportedException or ItemNotFoundException
            && ex is not PipelineStoppedException;

    /// <summary>
    /// An error record with a stable id, a category and the offending input as target. The
    /// exception's own target (the file or record at fault) is preferred, unless
    /// <paramref name="targetWins"/>: a fleet command's errors name the clone they befell, so
    /// that a log of a thousand clones tells which failed.
    /// </summary>
    protected internal static ErrorRecord ToErrorRecord(Exception ex, object target, bool targetWins = false)
    {
        if (ex is VmClone.Core.VmCloneException vm)
            return new ErrorRecord(ex, vm.ErrorId, vm.Kind switch
            {
                VmClone.Core.VmCloneErrorKind.NotFound => ErrorCategory.ObjectNotFound,
                VmClone.Core.VmCloneErrorKind.InvalidArgument => ErrorCategory.InvalidArgument,
                VmClone.Core.VmCloneErrorKind.AlreadyExists => ErrorCategory.ResourceExists,
                VmClone.Core.VmCloneErrorKind.InUse => ErrorCategory.ResourceBusy,
                VmClone.Core.VmCloneErrorKind.InvalidData => ErrorCategory.InvalidData,
                VmClone.Core.VmCloneErrorKind.NotWritable => ErrorCategory.WriteError,
                _ => ErrorCategory.InvalidOperation,
            }, targetWins ? target : vm.Target ?? target);
        (string id, ErrorCategory category) = ex switch
        {
            DiskChainException { Problem: ChainProblem.ParentMissing } => (StoreErrorIds.DiskParentMissing, ErrorCategory.ObjectNotFound),
            DiskChainException { Problem: ChainProblem.ParentModified } => (StoreErrorIds.DiskParentModified, ErrorCategory.InvalidData),
            DiskChainException { Problem: ChainProblem.Loop } => (StoreErrorIds.DiskChainLoop, ErrorCategory.InvalidData),
            DiskChainException { Problem: ChainProblem.TooDeep } => (StoreErrorIds.DiskChainTooDeep, ErrorCategory.LimitsExceeded),
            DiskChainException { Problem: ChainProblem.OutsideAllowedRoot } => (StoreErrorIds.DiskParentOutsideRoot, ErrorCategory.SecurityError),
            DiskChainException => (StoreErrorIds.DiskChainIncompatible, ErrorCategory.InvalidArgument),
            DiskFormatException { FormatFound: not null } => (StoreErrorIds.DiskExtensionMismatch, ErrorCategory.InvalidData),
            DiskFormatException => (StoreErrorIds.DiskFormatInvalid, ErrorCategory.InvalidData),
            VirtualDiskException v when v.InnerException is FileNotFoundException or DirectoryNotFoundException => (StoreErrorIds.DiskNotFound, ErrorCategory.ObjectNotFound),
            VirtualDiskException v when v.InnerException is UnauthorizedAccessException => (StoreErrorIds.DiskAccessDenied, ErrorCategory.PermissionDenied),
            VirtualDiskException => (StoreErrorIds.DiskOperationFailed, ErrorCategory.WriteError),
            FileNotFoundException or DirectoryNotFoundException => (StoreErrorIds.PathNotFound, ErrorCategory.ObjectNotFound),
            UnauthorizedAccessException => (StoreErrorIds.AccessDenied, ErrorCategory.PermissionDenied),
            ItemNotFoundException => (StoreErrorIds.PathNotFound, ErrorCategory.ObjectNotFound),
            ArgumentException => (StoreErrorIds.InvalidArgument, ErrorCategory.InvalidArgument),
            InvalidOperationException => (StoreErrorIds.InvalidOperation, ErrorCategory.InvalidOperation),
            OperationCanceledException => (StoreErrorIds.OperationStopped, ErrorCategory.OperationStopped),
            _ => (StoreErrorIds.OperationFailed, ErrorCategory.NotSpecified),
        };
        // An argument error names the code's parameter (" (Parameter 'spec')"): the user sees the message alone.
        if (ex is ArgumentException { ParamName: not null })
            ex = new ArgumentException(VmClone.Core.UserFacing.Message(ex), ex);
        return new ErrorRecord(ex, id, category, target);
    }

    /// <summary>Resolves -Path (wildcards allowed) to existing file system paths; unmatched input is an error for that input.</summary>
    protected IEnumerable<string> ResolveExistingPaths(IEnumerable<string> paths, bool literal)
    {
        foreach (string path in paths)
        {
            List<string> resolved = new();
            try
            {
                if (literal)
                {
                    string full = GetUnresolvedProviderPathFromPSPath(path);
                    if (!File.Exists(full))
                        throw new ItemNotFoundException($"Cannot find the disk file '{full}' because it does not exist.");
                    resolved.Add(full);
                }
                else
                {
                    resolved.AddRange(GetResolvedProviderPathFromPSPath(path, out ProviderInfo provider));
                    if (provider.ImplementingType != typeof(Microsoft.PowerShell.Commands.FileSystemProvider))
                        throw new ArgumentException($"'{path}' is not a file system path.");
                }
            }
            catch (Exception ex) when (ex is ItemNotFoundException or ArgumentException or System.Management.Automation.DriveNotFoundException or ProviderNotFoundException)
            {
                WriteError(new ErrorRecord(ex, StoreErrorIds.PathNotFound, ErrorCategory.ObjectNotFound, path));
                continue;
            }
            foreach (string r in resolved)
                yield return r;
        }
    }

    /// <summary>Resolves a path that must name exactly one existing file (wildcards allowed if they match one).</summary>
    protected string ResolveSinglePath(string path)
    {
        var resolved = GetResolvedProviderPathFromPSPath(path, out ProviderInfo provider);
        if (provider.ImplementingType != typeof(Microsoft.PowerShell.Commands.FileSystemProvider))
            throw new ArgumentException($"'{path}' is not a file system path.");
        if (resolved.Count != 1)
            throw new ArgumentException($"'{path}' matches {resolved.Count} files; name exactly one.");
        return resolved[0];
    }

    /// <summary>True when the user gave the parameter.</summary>
    protected bool IsBound(string parameterName) => MyInvocation.BoundParameters.ContainsKey(parameterName);

    /// <summary>A file system path for something that may not exist yet (no wildcards).</summary>
    protected string ResolveNewPath(string path) => GetUnresolvedProviderPathFromPSPath(path);
}
