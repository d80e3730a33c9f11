import { AppUser } from './app-user';
import { Comment } from './comment';
import { Project } from './project';
import { Task } from './task';
import { Workspace } from './workspace';
import { WorkspaceMember } from './workspace-member';

export { AppUser, Comment, Project, Task, Workspace, WorkspaceMember };
export { TASK_STATUSES, type TaskStatus } from './task';

/** Every entity of the schema, in the order their tables depend on each other. */
export const entities = [AppUser, Workspace, WorkspaceMember, Project, Task, Comment];
